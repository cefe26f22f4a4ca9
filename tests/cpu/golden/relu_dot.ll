; ModuleID = "relu_dot"

define void @"k0"(ptr %"args", ptr %"arena", i64 %"nthreads", ptr %"status") nounwind
{
entry:
  %".6" = getelementptr inbounds ptr, ptr %"args", i64 0
  %"v0.ptr" = load ptr, ptr %".6"
  %".7" = getelementptr inbounds ptr, ptr %"args", i64 1
  %"v1.ptr" = load ptr, ptr %".7"
  %"v2.ptr" = getelementptr inbounds i8, ptr %"arena", i64 0
  br label %"batch.head"
batch.head:
  %"batch" = phi  i64 [0, %"entry"], [%"batch.next", %"batch.body"]
  %".9" = icmp slt i64 %"batch", 1
  br i1 %".9", label %"batch.body", label %"batch.end"
batch.body:
  %".11" = mul i64 %"batch", 8
  %"a" = getelementptr inbounds float, ptr %"v0.ptr", i64 0
  %"b" = getelementptr inbounds float, ptr %"v1.ptr", i64 0
  %"c" = getelementptr inbounds float, ptr %"v2.ptr", i64 %".11"
  call void @"tj_cblas_sgemm"(i32 101, i32 111, i32 111, i64 2, i64 4, i64 3, float 0x3ff0000000000000, ptr %"a", i64 3, ptr %"b", i64 4, float              0x0, ptr %"c", i64 4)
  %"batch.next" = add nsw i64 %"batch", 1
  br label %"batch.head"
batch.end:
  call void @"k0.epilogue.chunk"(ptr %"args", ptr %"arena", i64 0, i64 2, ptr null, ptr %"status")
  ret void
}

declare void @"tj_cblas_sgemm"(i32 %".1", i32 %".2", i32 %".3", i64 %".4", i64 %".5", i64 %".6", float %".7", ptr %".8", i64 %".9", ptr %".10", i64 %".11", float %".12", ptr %".13", i64 %".14")

define internal void @"k0.epilogue.chunk"(ptr noalias %"args", ptr noalias %"arena", i64 %"lo", i64 %"hi", ptr noalias %"partial", ptr %"status")
{
entry:
  %"v2.ptr" = getelementptr inbounds i8, ptr %"arena", i64 0
  %".8" = getelementptr inbounds ptr, ptr %"args", i64 2
  %"v3.ptr" = load ptr, ptr %".8"
  br label %"i0.head"
i0.head:
  %"i0" = phi  i64 [%"lo", %"entry"], [%"i0.next", %"i1.end"]
  %".10" = icmp slt i64 %"i0", %"hi"
  br i1 %".10", label %"i0.body", label %"i0.end"
i0.body:
  br label %"i1.head"
i0.end:
  ret void
i1.head:
  %"i1" = phi  i64 [0, %"i0.body"], [%"i1.next", %"i1.body"]
  %".13" = icmp slt i64 %"i1", 4
  br i1 %".13", label %"i1.body", label %"i1.end"
i1.body:
  %".15" = mul nsw i64 %"i0", 4
  %".16" = add nsw i64 %".15", %"i1"
  %".17" = getelementptr inbounds float, ptr %"v2.ptr", i64 %".16"
  %"v2" = load float, ptr %".17"
  %".18" = fcmp ogt float %"v2",              0x0
  %".19" = fcmp uno float %"v2", %"v2"
  %".20" = or i1 %".18", %".19"
  %"v3" = select  i1 %".20", float %"v2", float              0x0
  %".22" = mul nsw i64 %"i0", 4
  %".23" = add nsw i64 %".22", %"i1"
  %".24" = getelementptr inbounds float, ptr %"v3.ptr", i64 %".23"
  store float %"v3", ptr %".24"
  %"i1.next" = add nsw i64 %"i1", 1
  br label %"i1.head"
i1.end:
  %"i0.next" = add nsw i64 %"i0", 1
  br label %"i0.head"
}

define i32 @"entry"(ptr %"args", ptr %"arena", i64 %"nthreads", ptr %"status")
{
entry:
  %".6" = call i64 @"llvm.readcyclecounter"()
  call void @"k0"(ptr %"args", ptr %"arena", i64 %"nthreads", ptr %"status")
  %".8" = getelementptr inbounds i64, ptr %"status", i64 4
  %".9" = load i64, ptr %".8"
  %".10" = call i64 @"llvm.readcyclecounter"()
  %".11" = sub i64 %".10", %".6"
  %".12" = add i64 %".9", %".11"
  store i64 %".12", ptr %".8"
  ret i32 0
}

declare i64 @"llvm.readcyclecounter"()

define i32 @"entry_objects"(ptr %"objects", ptr %"arena", i64 %"nthreads", ptr %"status")
{
entry:
  %"items" = getelementptr inbounds i8, ptr %"objects", i64 24
  %"table" = getelementptr inbounds i8, ptr %"arena", i64 64
  %".6" = getelementptr inbounds ptr, ptr %"items", i64 0
  %".7" = load ptr, ptr %".6"
  %".8" = getelementptr inbounds i8, ptr %".7", i64 16
  %"v0" = load ptr, ptr %".8"
  %".9" = getelementptr inbounds ptr, ptr %"table", i64 0
  store ptr %"v0", ptr %".9"
  %".11" = getelementptr inbounds ptr, ptr %"items", i64 1
  %".12" = load ptr, ptr %".11"
  %".13" = getelementptr inbounds i8, ptr %".12", i64 16
  %"v1" = load ptr, ptr %".13"
  %".14" = getelementptr inbounds ptr, ptr %"table", i64 1
  store ptr %"v1", ptr %".14"
  %".16" = getelementptr inbounds ptr, ptr %"items", i64 2
  %".17" = load ptr, ptr %".16"
  %".18" = getelementptr inbounds i8, ptr %".17", i64 16
  %"v3" = load ptr, ptr %".18"
  %".19" = getelementptr inbounds ptr, ptr %"table", i64 2
  store ptr %"v3", ptr %".19"
  %".21" = call i32 @"entry"(ptr %"table", ptr %"arena", i64 %"nthreads", ptr %"status")
  ret i32 %".21"
}
