// Drives libjpeg-turbo and libpng for Vision's image decoder.
//
// Both libraries report a fatal error by longjmp-ing out of the failing call, which Swift cannot catch,
// and their default handlers print to stderr (libjpeg's even calls exit()). These functions set up the
// jump target, install handlers that only record the message, and hand back the decoded samples as the
// codec produced them. Turning those samples into RGB the way Pillow does is left to Swift.
#ifndef PTH2SWT_CIMAGESUPPORT_H
#define PTH2SWT_CIMAGESUPPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result codes of cis_decode_jpeg and cis_decode_png.
enum {
    CIS_OK = 0,
    /// The codec refused the data; `message` holds its text.
    CIS_CORRUPT = 1,
    /// The data ended before the image did.
    CIS_TRUNCATED = 2,
    /// A well-formed file of a kind this decoder does not handle (a JPEG with 2 or more than 4
    /// components, 12-bit samples, a lossless or hierarchical frame); `message` says which.
    CIS_UNSUPPORTED = 3,
    /// width * height is above the caller's limit; `width` and `height` are set.
    CIS_TOO_LARGE = 4,
    /// malloc failed.
    CIS_NO_MEMORY = 5,
};

#define CIS_MESSAGE_LENGTH 200

/// A decoded image in the codec's own layout.
///
/// JPEG: `channels` is 1 (grayscale), 3 (RGB, converted by libjpeg from YCbCr or taken as stored) or 4
/// (CMYK exactly as libjpeg outputs it, that is Adobe-inverted for Adobe files); `bit_depth` is 8.
///
/// PNG: 1-, 2- and 4-bit grayscale are scaled to 8 bits (libpng's bit replication), palette indices are
/// unpacked to one byte each and left as indices (`is_palette`, with `palette`), 16-bit samples are cut
/// to their high byte except for 16-bit grayscale, which stays 16 bits big-endian (`bit_depth` 16).
/// `channels` is 1 (gray or index), 2 (gray, alpha), 3 (RGB) or 4 (RGBA). tRNS is ignored.
typedef struct cis_image {
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    uint32_t bit_depth;
    uint32_t is_palette;
    uint32_t palette_size;
    uint8_t palette[256 * 3];
    /// height rows of width * channels * bit_depth / 8 bytes, no padding; malloc'd, release with
    /// cis_image_free. NULL unless the result is CIS_OK.
    uint8_t *pixels;
    size_t pixels_size;
    /// NUL-terminated error text from the codec, empty on success.
    char message[CIS_MESSAGE_LENGTH];
    /// Internal: row pointers for libpng, freed before return.
    uint8_t **rows;
} cis_image;

/// Decodes a JPEG held in memory with libjpeg's defaults (islow IDCT, fancy upsampling), as Pillow does.
/// Images with more than max_pixels pixels are refused before any sample buffer is allocated.
int cis_decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels, cis_image *out);

/// Decodes a PNG held in memory (any bit depth and colour type, interlaced or not).
/// Images with more than max_pixels pixels are refused before any sample buffer is allocated.
int cis_decode_png(const uint8_t *data, size_t size, uint64_t max_pixels, cis_image *out);

/// Frees what a decode left in `image` (safe to call more than once).
void cis_image_free(cis_image *image);

#ifdef __cplusplus
}
#endif

#endif
