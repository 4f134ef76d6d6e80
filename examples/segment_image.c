/* segment_image: the BFCN runtime's C API on one image (docs/deploy.md).
 *   segment_image MODEL.bfcn IN.ppm OUT.pgm [THREADS] [REPEATS]
 * Reads a binary PPM (P6, maxval 255), writes the label map as a binary PGM (P5, one byte of class
 * index per pixel), prints the pixels per class and the time of one run (the best of REPEATS). */
#define _POSIX_C_SOURCE 199309L
#include <bfcn/bfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned char* read_ppm(const char* path, int* w, int* h) {
  FILE* f = fopen(path, "rb");
  unsigned char* px = NULL;
  int maxval = 0;
  if (!f) return NULL;
  if (fscanf(f, "P6 %d %d %d", w, h, &maxval) == 3 && maxval == 255 && *w > 0 && *h > 0 &&
      *w <= 16384 && *h <= 16384 && fgetc(f) != EOF) {
    size_t n = (size_t)*w * (size_t)*h * 3;
    px = (unsigned char*)malloc(n);
    if (px && fread(px, 1, n, f) != n) free(px), px = NULL;
  }
  fclose(f);
  return px;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  bfcn_model* model = NULL;
  unsigned char *rgb, *labels;
  long count[256] = {0};
  int w, h, c, i, repeats = argc > 5 ? atoi(argv[5]) : 1;
  double best = 1e30;
  FILE* out;
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.bfcn IN.ppm OUT.pgm [THREADS] [REPEATS]\n", argv[0]);
    return 2;
  }
  if (bfcn_model_load_file(argv[1], &model) != BFCN_OK ||
      (argc > 4 && bfcn_model_set_threads(model, atoi(argv[4])) != BFCN_OK)) {
    fprintf(stderr, "segment_image: %s\n", bfcn_last_error());
    return 1;
  }
  if (!(rgb = read_ppm(argv[2], &w, &h))) {
    fprintf(stderr, "segment_image: %s: not a binary PPM (P6, maxval 255)\n", argv[2]);
    return 1;
  }
  labels = (unsigned char*)malloc((size_t)w * (size_t)h);
  for (i = 0; i < (repeats > 0 ? repeats : 1); ++i) {
    double t0 = now_ms();
    if (!labels || bfcn_model_run(model, rgb, h, w, 0, labels, NULL) != BFCN_OK) {
      fprintf(stderr, "segment_image: %s\n", labels ? bfcn_last_error() : "out of memory");
      return 1;
    }
    if (now_ms() - t0 < best) best = now_ms() - t0;
  }
  if (!(out = fopen(argv[3], "wb")) || fprintf(out, "P5\n%d %d\n255\n", w, h) < 0 ||
      fwrite(labels, 1, (size_t)w * h, out) != (size_t)w * h || fclose(out) != 0) {
    fprintf(stderr, "segment_image: cannot write %s\n", argv[3]);
    return 1;
  }
  for (i = 0; i < w * h; ++i) count[labels[i]]++;
  printf("%s: %dx%d in %.2f ms (best of %d)\n", argv[2], w, h, best, repeats > 0 ? repeats : 1);
  for (c = 0; c < bfcn_model_num_classes(model); ++c)
    if (count[c]) printf("  %-16s %ld px\n", bfcn_model_class_name(model, c), count[c]);
  free(labels);
  free(rgb);
  bfcn_model_free(model);
  return 0;
}
