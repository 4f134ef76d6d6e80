/* BFCN runtime C API: run an exported .bfcn segmentation model (bfcn export) in your own program.
 * C89-compatible; no C++ exception ever crosses it. Guide and example: docs/deploy.md.
 *
 * Errors: every function that can fail returns a bfcn_status; on failure bfcn_last_error() gives
 * the message (naming the file, key or value) of the calling thread's last failed call.
 *
 * Threads: a loaded model is read-only while it runs, so one bfcn_model may be passed to
 * bfcn_model_run from several threads at once (each call works in its own buffers; each call's
 * OpenMP team has bfcn_model_set_threads threads). bfcn_model_set_threads,
 * bfcn_model_set_input_size, bfcn_model_set_stem_int8 and bfcn_model_free change the model: call
 * them while no bfcn_model_run on the same model is in progress. */
#ifndef BFCN_BFCN_H
#define BFCN_BFCN_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define BFCN_API __attribute__((visibility("default")))
#else
#define BFCN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A loaded model (opaque). */
typedef struct bfcn_model bfcn_model;

typedef enum bfcn_status {
  BFCN_OK = 0,
  BFCN_ERROR_ARGUMENT = 1, /* a NULL pointer, a size or index out of range */
  BFCN_ERROR_IO = 2,       /* the file is missing, unreadable or not a valid .bfcn model */
  BFCN_ERROR_MEMORY = 3,   /* an allocation failed */
  BFCN_ERROR_RUNTIME = 4   /* any other failure, e.g. an image too small for the network */
} bfcn_status;

/* The message of this thread's last failed call ("" when none); valid until its next call. */
BFCN_API const char* bfcn_last_error(void);
/* The library version, "major.minor.patch". */
BFCN_API const char* bfcn_version(void);

/* Loads and validates a model (sizes, checksum, graph). On success *out is a new model to free
 * with bfcn_model_free; on failure *out is NULL. load_memory copies the buffer. */
BFCN_API bfcn_status bfcn_model_load_file(const char* path, bfcn_model** out);
BFCN_API bfcn_status bfcn_model_load_memory(const void* data, size_t size, bfcn_model** out);
/* NULL is allowed. */
BFCN_API void bfcn_model_free(bfcn_model* model);

/* Number of classes (1..255; labels are class indices), or -1 when model is NULL. */
BFCN_API int bfcn_model_num_classes(const bfcn_model* model);
/* The class's name (owned by the model), or NULL when model is NULL or index is out of range. */
BFCN_API const char* bfcn_model_class_name(const bfcn_model* model, int index);
/* The class's display colour; classes beyond the file's palette get black. */
BFCN_API bfcn_status bfcn_model_palette(const bfcn_model* model, int index, unsigned char rgb[3]);

/* The size the network runs at. 0 x 0 (the default): each image's own size, exactly as
 * `bfcn infer` does (the network is fully convolutional). height, width > 0: every image is
 * resized (bilinear) to height x width, the network runs there, and its logits are resized back
 * (bilinear) to the image's size before the argmax; use it to bound the time of large images. */
BFCN_API bfcn_status bfcn_model_set_input_size(bfcn_model* model, int height, int width);
BFCN_API bfcn_status bfcn_model_input_size(const bfcn_model* model, int* height, int* width);

/* OpenMP threads of each bfcn_model_run on this model; 0 (the default) = OpenMP's default
 * (OMP_NUM_THREADS or all cores). */
BFCN_API bfcn_status bfcn_model_set_threads(bfcn_model* model, int threads);

/* The RGB stem in integers (on = 1, or 15) or FP32 (on = 0, the default). int8 is faster where
 * the CPU has AVX-512 VNNI; the image becomes bytes (exactly, for 8-bit images) and the stem's
 * weights 15-bit integers, so its outputs are within ~1e-4 of the FP32 stem's and its labels
 * differ at ~1 % of the pixels, with no measurable mIoU change (docs/runtime.md gives the
 * measured accuracy). on = 8: 8-bit weights, one VNNI pass instead of two (faster; labels differ
 * at ~2.5 %). */
BFCN_API bfcn_status bfcn_model_set_stem_int8(bfcn_model* model, int on);

/* Segments one image. rgb: height x width pixels of 3 bytes (R, G, B), rows row_stride bytes apart
 * (0 = 3 * width), owned by the caller. labels (required): height * width bytes, written with
 * the class index of every pixel (row-major). logits (optional, may be NULL): num_classes *
 * height * width floats, written class-planar [class][y][x]. 1 <= height, width <= 16384. */
BFCN_API bfcn_status bfcn_model_run(const bfcn_model* model, const unsigned char* rgb, int height,
                                    int width, size_t row_stride, unsigned char* labels,
                                    float* logits);

#ifdef __cplusplus
}
#endif

#endif /* BFCN_BFCN_H */
