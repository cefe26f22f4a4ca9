; ModuleID = "scale_add"

define void @"k0"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status") nounwind
{
entry:
  %"partial" = alloca i64, i32 64
  %".6" = bitcast i64* %"partial" to i8*
  call void @"k0.chunk"(i8** %"args", i8* %"arena", i64 0, i64 4, i8* %".6", i64* %"status")
  ret void
}

define internal void @"k0.chunk"(i8** noalias %"args", i8* noalias %"arena", i64 %"lo", i64 %"hi", i8* noalias %"partial", i64* %"status")
{
entry:
  %".8" = getelementptr inbounds i8*, i8** %"args", i64 0
  %".9" = load i8*, i8** %".8"
  %"v0.ptr" = bitcast i8* %".9" to float*
  %".10" = getelementptr inbounds i8*, i8** %"args", i64 1
  %".11" = load i8*, i8** %".10"
  %"v1.ptr" = bitcast i8* %".11" to float*
  %".12" = getelementptr inbounds i8*, i8** %"args", i64 2
  %".13" = load i8*, i8** %".12"
  %"v3.ptr" = bitcast i8* %".13" to float*
  br label %"i0.head"
i0.head:
  %"i0" = phi  i64 [%"lo", %"entry"], [%"i0.next", %"i0.body"]
  %".15" = icmp slt i64 %"i0", %"hi"
  br i1 %".15", label %"i0.body", label %"i0.end"
i0.body:
  %".17" = getelementptr inbounds float, float* %"v0.ptr", i64 %"i0"
  %"v0.0" = load float, float* %".17"
  %".18" = getelementptr inbounds float, float* %"v1.ptr", i64 %"i0"
  %"v1.1" = load float, float* %".18"
  %"v2" = fmul float %"v0.0", 0x4000000000000000
  %"v3" = fadd float %"v2", %"v1.1"
  %".21" = getelementptr inbounds float, float* %"v3.ptr", i64 %"i0"
  store float %"v3", float* %".21"
  %"i0.next" = add nsw i64 %"i0", 1
  br label %"i0.head"
i0.end:
  ret void
}

define i32 @"entry"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status")
{
entry:
  %".6" = call i64 @"llvm.readcyclecounter"()
  call void @"k0"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status")
  %".8" = getelementptr i64, i64* %"status", i64 4
  %".9" = load i64, i64* %".8"
  %".10" = call i64 @"llvm.readcyclecounter"()
  %".11" = sub i64 %".10", %".6"
  %".12" = add i64 %".9", %".11"
  store i64 %".12", i64* %".8"
  ret i32 0
}

declare i64 @"llvm.readcyclecounter"()

define i32 @"entry_objects"(i8** %"objects", i8* %"arena", i64 %"nthreads", i64* %"status")
{
entry:
  %".6" = bitcast i8** %"objects" to i8*
  %".7" = getelementptr i8, i8* %".6", i64 24
  %".8" = bitcast i8* %".7" to i8**
  %"table" = alloca i8*, i64 3
  %".9" = getelementptr i8*, i8** %".8", i64 0
  %".10" = load i8*, i8** %".9"
  %".11" = getelementptr i8, i8* %".10", i64 16
  %".12" = bitcast i8* %".11" to i8**
  %"v0" = load i8*, i8** %".12"
  %".13" = getelementptr i8*, i8** %"table", i64 0
  store i8* %"v0", i8** %".13"
  %".15" = getelementptr i8*, i8** %".8", i64 1
  %".16" = load i8*, i8** %".15"
  %".17" = getelementptr i8, i8* %".16", i64 16
  %".18" = bitcast i8* %".17" to i8**
  %"v1" = load i8*, i8** %".18"
  %".19" = getelementptr i8*, i8** %"table", i64 1
  store i8* %"v1", i8** %".19"
  %".21" = getelementptr i8*, i8** %".8", i64 2
  %".22" = load i8*, i8** %".21"
  %".23" = getelementptr i8, i8* %".22", i64 16
  %".24" = bitcast i8* %".23" to i8**
  %"v3" = load i8*, i8** %".24"
  %".25" = getelementptr i8*, i8** %"table", i64 2
  store i8* %"v3", i8** %".25"
  %".27" = call i32 @"entry"(i8** %"table", i8* %"arena", i64 %"nthreads", i64* %"status")
  ret i32 %".27"
}
