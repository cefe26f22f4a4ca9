; ModuleID = "scale_add"

define void @"k0"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status") nounwind
{
entry:
  call void @"k0.chunk"(i8** %"args", i8* %"arena", i64 0, i64 4, i8* null, i64* %"status")
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
  %".9" = getelementptr inbounds i8, i8* %"arena", i64 0
  %"table" = bitcast i8* %".9" to i8**
  %".10" = getelementptr i8*, i8** %".8", i64 0
  %".11" = load i8*, i8** %".10"
  %".12" = getelementptr i8, i8* %".11", i64 16
  %".13" = bitcast i8* %".12" to i8**
  %"v0" = load i8*, i8** %".13"
  %".14" = getelementptr i8*, i8** %"table", i64 0
  store i8* %"v0", i8** %".14"
  %".16" = getelementptr i8*, i8** %".8", i64 1
  %".17" = load i8*, i8** %".16"
  %".18" = getelementptr i8, i8* %".17", i64 16
  %".19" = bitcast i8* %".18" to i8**
  %"v1" = load i8*, i8** %".19"
  %".20" = getelementptr i8*, i8** %"table", i64 1
  store i8* %"v1", i8** %".20"
  %".22" = getelementptr i8*, i8** %".8", i64 2
  %".23" = load i8*, i8** %".22"
  %".24" = getelementptr i8, i8* %".23", i64 16
  %".25" = bitcast i8* %".24" to i8**
  %"v3" = load i8*, i8** %".25"
  %".26" = getelementptr i8*, i8** %"table", i64 2
  store i8* %"v3", i8** %".26"
  %".28" = call i32 @"entry"(i8** %"table", i8* %"arena", i64 %"nthreads", i64* %"status")
  ret i32 %".28"
}
