; ModuleID = "row_sum"

define void @"k0"(ptr %"args", ptr %"arena", i64 %"nthreads", ptr %"status") nounwind
{
entry:
  call void @"k0.chunk"(ptr %"args", ptr %"arena", i64 0, i64 3, ptr null, ptr %"status")
  ret void
}

define internal void @"k0.chunk"(ptr noalias %"args", ptr noalias %"arena", i64 %"lo", i64 %"hi", ptr noalias %"partial", ptr %"status")
{
entry:
  %"v1.acc" = alloca double
  %".8" = getelementptr inbounds ptr, ptr %"args", i64 0
  %"v0.ptr" = load ptr, ptr %".8"
  %".9" = getelementptr inbounds ptr, ptr %"args", i64 1
  %"v1.ptr" = load ptr, ptr %".9"
  br label %"i0.head"
i0.head:
  %"i0" = phi  i64 [%"lo", %"entry"], [%"i0.next", %"i1.end"]
  %".11" = icmp slt i64 %"i0", %"hi"
  br i1 %".11", label %"i0.body", label %"i0.end"
i0.body:
  store double              0x0, double* %"v1.acc"
  br label %"i1.head"
i0.end:
  ret void
i1.head:
  %"i1" = phi  i64 [0, %"i0.body"], [%"i1.next", %"i1.body"]
  %".15" = icmp slt i64 %"i1", 5
  br i1 %".15", label %"i1.body", label %"i1.end"
i1.body:
  %".17" = mul nsw i64 %"i0", 5
  %".18" = add nsw i64 %".17", %"i1"
  %".19" = getelementptr inbounds float, ptr %"v0.ptr", i64 %".18"
  %"v0.0" = load float, ptr %".19"
  %".20" = fpext float %"v0.0" to double
  %".21" = load double, double* %"v1.acc"
  %".22" = fadd reassoc double %".21", %".20"
  store double %".22", double* %"v1.acc"
  %"i1.next" = add nsw i64 %"i1", 1
  br label %"i1.head"
i1.end:
  %".25" = load double, double* %"v1.acc"
  %"v1" = fptrunc double %".25" to float
  %".26" = getelementptr inbounds float, ptr %"v1.ptr", i64 %"i0"
  store float %"v1", ptr %".26"
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
  %"table" = getelementptr inbounds i8, ptr %"arena", i64 0
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
  %".16" = call i32 @"entry"(ptr %"table", ptr %"arena", i64 %"nthreads", ptr %"status")
  ret i32 %".16"
}
