// PNG through libpng, reading from memory, with error and warning handlers that never print.
#include "cimagesupport.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    cis_image *out;
    int truncated;
} cis_png_source;

static void cis_png_error(png_structp png, png_const_charp message) {
    cis_png_source *src = (cis_png_source *)png_get_error_ptr(png);
    if (!src->truncated) {
        snprintf(src->out->message, CIS_MESSAGE_LENGTH, "%s", message);
    }
    png_longjmp(png, 1);
}

static void cis_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void cis_png_read(png_structp png, png_bytep dest, size_t length) {
    cis_png_source *src = (cis_png_source *)png_get_io_ptr(png);
    if (length > src->size - src->offset) {
        src->truncated = 1;
        snprintf(src->out->message, CIS_MESSAGE_LENGTH, "data ends %zu bytes into a %zu-byte read at offset %zu",
                 src->size - src->offset, length, src->offset);
        png_error(png, "truncated");
    }
    memcpy(dest, src->data + src->offset, length);
    src->offset += length;
}

int cis_decode_png(const uint8_t *data, size_t size, uint64_t max_pixels, cis_image *out) {
    cis_png_source src = {data, size, 0, out, 0};
    png_structp png;
    png_infop info;

    memset(out, 0, sizeof(*out));
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, cis_png_error, cis_png_warning);
    if (!png) {
        return CIS_NO_MEMORY;
    }
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return CIS_NO_MEMORY;
    }
    // png and info are not changed after this point, so they are intact after the longjmp.
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        cis_image_free(out);
        // src's address was handed to libpng before setjmp, so it lives in memory; read it afresh.
        return ((volatile cis_png_source *)&src)->truncated ? CIS_TRUNCATED : CIS_CORRUPT;
    }

    png_set_read_fn(png, &src, cis_png_read);
    // Pillow checks the CRC of every chunk it reads before the image data, ancillary ones included.
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info);
    int color = png_get_color_type(png, info);
    out->width = width;
    out->height = height;
    if ((uint64_t)width * height > max_pixels) {
        png_destroy_read_struct(&png, &info, NULL);
        return CIS_TOO_LARGE;
    }

    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_colorp entries = NULL;
        int count = 0;
        if (png_get_PLTE(png, info, &entries, &count) != PNG_INFO_PLTE) {
            count = 0;
        }
        out->is_palette = 1;
        out->palette_size = (uint32_t)count;
        for (int i = 0; i < count && i < 256; i++) {
            out->palette[i * 3 + 0] = entries[i].red;
            out->palette[i * 3 + 1] = entries[i].green;
            out->palette[i * 3 + 2] = entries[i].blue;
        }
        // One index per byte, values unchanged.
        png_set_packing(png);
    } else if (color == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    } else if (depth == 16 && color != PNG_COLOR_TYPE_GRAY) {
        png_set_strip_16(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    out->channels = png_get_channels(png, info);
    out->bit_depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if (out->channels < 1 || out->channels > 4 || (out->bit_depth != 8 && out->bit_depth != 16)
        || row_bytes != (size_t)width * out->channels * (out->bit_depth / 8)) {
        snprintf(out->message, CIS_MESSAGE_LENGTH, "unexpected layout after transforms: %u channels of %u bits",
                 out->channels, out->bit_depth);
        png_destroy_read_struct(&png, &info, NULL);
        return CIS_UNSUPPORTED;
    }
    out->pixels_size = row_bytes * height;
    out->pixels = malloc(out->pixels_size ? out->pixels_size : 1);
    out->rows = malloc(sizeof(uint8_t *) * (height ? height : 1));
    if (!out->pixels || !out->rows) {
        png_destroy_read_struct(&png, &info, NULL);
        cis_image_free(out);
        return CIS_NO_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) {
        out->rows[y] = out->pixels + (size_t)y * row_bytes;
    }
    // Reads every pass of an interlaced image. The chunks after the image data are not read: Pillow
    // does not need them either (a missing IEND is fine).
    png_read_image(png, out->rows);
    free(out->rows);
    out->rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    return CIS_OK;
}
