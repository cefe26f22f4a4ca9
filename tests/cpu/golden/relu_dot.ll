; ModuleID = "relu_dot"

define void @"k0"(i8** %"args", i8* %"arena", i64 %"nthreads", i64* %"status") nounwind
{
entry:
  %".6" = getelementptr inbounds i8*, i8** %"args", i64 0
  %".7" = load i8*, i8** %".6"
  %"v0.ptr" = bitcast i8* %".7" to float*
  %".8" = getelementptr inbounds i8*, i8** %"args", i64 1
  %".9" = load i8*, i8** %".8"
  %"v1.ptr" = bitcast i8* %".9" to float*
  %".10" = getelementptr inbounds i8, i8* %"arena", i64 0
  %"v2.ptr" = bitcast i8* %".10" to float*
  br label %"batch.head"
batch.head:
  %"batch" = phi  i64 [0, %"entry"], [%"batch.next", %"batch.body"]
  %".12" = icmp slt i64 %"batch", 1
  br i1 %".12", label %"batch.body", label %"batch.end"
batch.body:
  %".14" = mul i64 %"batch", 8
  %"a" = getelementptr inbounds float, float* %"v0.ptr", i64 0
  %"b" = getelementptr inbounds float, float* %"v1.ptr", i64 0
  %"c" = getelementptr inbounds float, float* %"v2.ptr", i64 %".14"
  call void @"tj_cblas_sgemm"(i32 101, i32 111, i32 111, i64 2, i64 4, i64 3, float 0x3ff0000000000000, float* %"a", i64 3, float* %"b", i64 4, float              0x0, float* %"c", i64 4)
  %"batch.next" = add nsw i64 %"batch", 1
  br label %"batch.head"
batch.end:
  call void @"k0.epilogue.chunk"(i8** %"args", i8* %"arena", i64 0, i64 2, i8* null, i64* %"status")
  ret void
}

declare void @"tj_cblas_sgemm"(i32 %".1", i32 %".2", i32 %".3", i64 %".4", i64 %".5", i64 %".6", float %".7", float* %".8", i64 %".9", float* %".10", i64 %".11", float %".12", float* %".13", i64 %".14")

define internal void @"k0.epilogue.chunk"(i8** noalias %"args", i8* noalias %"arena", i64 %"lo", i64 %"hi", i8* noalias %"partial", i64* %"status")
{
entry:
  %".8" = getelementptr inbounds i8, i8* %"arena", i64 0
  %"v2.ptr" = bitcast i8* %".8" to float*
  %".9" = getelementptr inbounds i8*, i8** %"args", i64 2
  %".10" = load i8*, i8** %".9"
  %"v3.ptr" = bitcast i8* %".10" to float*
  br label %"i0.head"
i0.head:
  %"i0" = phi  i64 [%"lo", %"entry"], [%"i0.next", %"i1.end"]
  %".12" = icmp slt i64 %"i0", %"hi"
  br i1 %".12", label %"i0.body", label %"i0.end"
i0.body:
  br label %"i1.head"
i0.end:
  ret void
i1.head:
  %"i1" = phi  i64 [0, %"i0.body"], [%"i1.next", %"i1.body"]
  %".15" = icmp slt i64 %"i1", 4
  br i1 %".15", label %"i1.body", label %"i1.end"
i1.body:
  %".17" = mul nsw i64 %"i0", 4
  %".18" = add nsw i64 %".17", %"i1"
  %".19" = getelementptr inbounds float, float* %"v2.ptr", i64 %".18"
  %"v2" = load float, float* %".19"
  %".20" = fcmp ogt float %"v2",              0x0
  %".21" = fcmp uno float %"v2", %"v2"
  %".22" = or i1 %".20", %".21"
  %"v3" = select  i1 %".22", float %"v2", float              0x0
  %".24" = mul nsw i64 %"i0", 4
  %".25" = add nsw i64 %".24", %"i1"
  %".26" = getelementptr inbounds float, float* %"v3.ptr", i64 %".25"
  store float %"v3", float* %".26"
  %"i1.next" = add nsw i64 %"i1", 1
  br label %"i1.head"
i1.end:
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
  %".9" = getelementptr inbounds i8, i8* %"arena", i64 64
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
