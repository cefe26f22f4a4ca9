; ModuleID = "row_sum"

define void @"k0"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status") nounwind
{
entry:
  call void @"k0.chunk"(i8** %"args", i8* %"arena", i64 0, i64 3, i8* null, i64* %"status")
  ret void
}

define internal void @"k0.chunk"(i8** noalias %"args", i8* noalias %"arena", i64 %"lo", i64 %"hi", i8* noalias %"partial", i64* %"status")
{
entry:
  %"v1.acc" = alloca double
  %".8" = getelementptr inbounds i8*, i8** %"args", i64 0
  %".9" = load i8*, i8** %".8"
  %"v0.ptr" = bitcast i8* %".9" to float*
  %".10" = getelementptr inbounds i8*, i8** %"args", i64 1
  %".11" = load i8*, i8** %".10"
  %"v1.ptr" = bitcast i8* %".11" to float*
  br label %"i0.head"
i0.head:
  %"i0" = phi  i64 [%"lo", %"entry"], [%"i0.next", %"i1.end"]
  %".13" = icmp slt i64 %"i0", %"hi"
  br i1 %".13", label %"i0.body", label %"i0.end"
i0.body:
  store double              0x0, double* %"v1.acc"
  br label %"i1.head"
i0.end:
  ret void
i1.head:
  %"i1" = phi  i64 [0, %"i0.body"], [%"i1.next", %"i1.body"]
  %".17" = icmp slt i64 %"i1", 5
  br i1 %".17", label %"i1.body", label %"i1.end"
i1.body:
  %".19" = mul nsw i64 %"i0", 5
  %".20" = add nsw i64 %".19", %"i1"
  %".21" = getelementptr inbounds float, float* %"v0.ptr", i64 %".20"
  %"v0.0" = load float, float* %".21"
  %".22" = fpext float %"v0.0" to double
  %".23" = load double, double* %"v1.acc"
  %".24" = fadd reassoc double %".23", %".22"
  store double %".24", double* %"v1.acc"
  %"i1.next" = add nsw i64 %"i1", 1
  br label %"i1.head"
i1.end:
  %".27" = load double, double* %"v1.acc"
  %"v1" = fptrunc double %".27" to float
  %".28" = getelementptr inbounds float, float* %"v1.ptr", i64 %"i0"
  store float %"v1", float* %".28"
  %"i0.next" = add nsw i64 %"i0", 1
  br label %"i0.head"
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
  %".22" = call i32 @"entry"(i8** %"table", i8* %"arena", i64 %"nthreads", i64* %"status")
  ret i32 %".22"
}
