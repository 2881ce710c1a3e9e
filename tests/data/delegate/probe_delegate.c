/* A real, minimal TFLite external delegate for the tests (tests/vision_runtime.rs builds it with
 * the C compiler against the headers scripts/fetch-tflite-c.sh installs).
 *
 * It is loaded the way an Edge TPU or NPU delegate is (tflite_plugin_create_delegate with the
 * config's options), is asked by the interpreter which nodes it takes, and honestly takes none, so
 * the model's outputs must not change. It writes what it was told and asked into the file named by
 * its `log` option, which is how the tests know it really ran.
 *
 * Options: log=<file> (required), fail=create (create returns NULL), fail=prepare (Prepare fails).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/lite/c/common.h"

typedef struct {
  char log[4096];
  int fail_prepare;
} Probe;

static void append(const Probe* p, const char* line) {
  FILE* f = fopen(p->log, "a");
  if (f) {
    fputs(line, f);
    fputc('\n', f);
    fclose(f);
  }
}

static TfLiteStatus prepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  Probe* p = (Probe*)delegate->data_;
  TfLiteIntArray* plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  char line[64];
  snprintf(line, sizeof line, "prepare nodes=%d", plan->size);
  append(p, line);
  /* Claiming no node means not calling ReplaceNodeSubsetsWithDelegateKernels at all. */
  return p->fail_prepare ? kTfLiteError : kTfLiteOk;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report_error)(const char*)) {
  Probe* p = calloc(1, sizeof *p);
  int fail_create = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(keys[i], "log") == 0) {
      snprintf(p->log, sizeof p->log, "%s", values[i]);
    } else if (strcmp(keys[i], "fail") == 0) {
      fail_create = strcmp(values[i], "create") == 0;
      p->fail_prepare = strcmp(values[i], "prepare") == 0;
    }
  }
  if (p->log[0] == '\0' || fail_create) {
    if (report_error) report_error("probe delegate: refusing to create");
    if (p->log[0] != '\0') append(p, "create refused");
    free(p);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    char line[4200];
    snprintf(line, sizeof line, "option %s=%s", keys[i], values[i]);
    append(p, line);
  }
  TfLiteDelegate* d = calloc(1, sizeof *d);
  d->data_ = p;
  d->Prepare = prepare;
  d->flags = kTfLiteDelegateFlagsNone;
  append(p, "created");
  return d;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* d) {
  Probe* p = (Probe*)d->data_;
  append(p, "destroyed");
  free(p);
  free(d);
}
