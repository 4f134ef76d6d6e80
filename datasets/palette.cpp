#include "datasets/palette.h"

#include <cstddef>

namespace bfcn {

Palette voc_palette() {
  Palette p(256);
  for (int i = 0; i < 256; ++i) {
    int r = 0, g = 0, b = 0, c = i;
    // Bit j of the index goes to bit (7 - shift) of R (j%3==0), G (==1), B (==2).
    for (int shift = 7; shift >= 0 && c > 0; --shift, c >>= 3) {
      r |= (c & 1) << shift;
      g |= ((c >> 1) & 1) << shift;
      b |= ((c >> 2) & 1) << shift;
    }
    p[static_cast<size_t>(i)] = {static_cast<uint8_t>(r), static_cast<uint8_t>(g),
                                 static_cast<uint8_t>(b)};
  }
  return p;
}

Palette cityscapes_train_palette() {
  static constexpr uint8_t kColours[19][3] = {
      {128, 64, 128},  {244, 35, 232}, {70, 70, 70},  {102, 102, 156}, {190, 153, 153},
      {153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35},  {152, 251, 152},
      {70, 130, 180},  {220, 20, 60},  {255, 0, 0},   {0, 0, 142},     {0, 0, 70},
      {0, 60, 100},    {0, 80, 100},   {0, 0, 230},   {119, 11, 32}};
  Palette p(256, {0, 0, 0});
  for (int i = 0; i < 19; ++i)
    p[static_cast<size_t>(i)] = {kColours[i][0], kColours[i][1], kColours[i][2]};
  return p;
}

}  // namespace bfcn
