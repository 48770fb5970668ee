// JPEG through libjpeg-turbo with an error manager that longjmps back here instead of calling exit().
#include "cimagesupport.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    cis_image *out;
    int truncated;
    int unsupported;
} cis_jpeg_error;

static void cis_jpeg_format(j_common_ptr cinfo, cis_image *out) {
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(out->message, CIS_MESSAGE_LENGTH, "%s", text);
}

static void cis_jpeg_error_exit(j_common_ptr cinfo) {
    cis_jpeg_error *err = (cis_jpeg_error *)cinfo->err;
    int code = cinfo->err->msg_code;
    // Well-formed files of kinds this build of libjpeg does not decode (12-bit samples, lossless or
    // hierarchical frames); Pillow refuses them too.
    err->unsupported = code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED;
    cis_jpeg_format(cinfo, err->out);
    longjmp(err->jump, 1);
}

// Warnings (level -1) are recoverable corrupt-data reports; Pillow passes over them, so do we, except
// for the premature end of data, where libjpeg would pad with a fake EOI and Pillow reports a truncated
// file. Trace messages (level >= 0) are dropped.
static void cis_jpeg_emit_message(j_common_ptr cinfo, int level) {
    cis_jpeg_error *err = (cis_jpeg_error *)cinfo->err;
    if (level >= 0) {
        return;
    }
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        err->truncated = 1;
        cis_jpeg_format(cinfo, err->out);
        longjmp(err->jump, 1);
    }
    cinfo->err->num_warnings++;
}

static void cis_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

int cis_decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels, cis_image *out) {
    struct jpeg_decompress_struct cinfo;
    cis_jpeg_error err;

    memset(out, 0, sizeof(*out));
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = cis_jpeg_error_exit;
    err.pub.emit_message = cis_jpeg_emit_message;
    err.pub.output_message = cis_jpeg_output_message;
    err.out = out;
    err.truncated = 0;
    err.unsupported = 0;

    // Everything that must survive the longjmp lives in *out or err, not in locals.
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(out->pixels);
        out->pixels = NULL;
        out->pixels_size = 0;
        volatile cis_jpeg_error *e = &err;
        return e->truncated ? CIS_TRUNCATED : e->unsupported ? CIS_UNSUPPORTED : CIS_CORRUPT;
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    out->width = cinfo.image_width;
    out->height = cinfo.image_height;
    if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return CIS_TOO_LARGE;
    }
    switch (cinfo.num_components) {
    case 1:
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case 3:
        cinfo.out_color_space = JCS_RGB;
        break;
    case 4:
        cinfo.out_color_space = JCS_CMYK;
        break;
    default:
        snprintf(out->message, CIS_MESSAGE_LENGTH, "%d-component JPEG (1, 3 or 4 expected)",
                 cinfo.num_components);
        jpeg_destroy_decompress(&cinfo);
        return CIS_UNSUPPORTED;
    }

    jpeg_start_decompress(&cinfo);
    out->channels = (uint32_t)cinfo.output_components;
    out->bit_depth = 8;
    size_t row_bytes = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    out->pixels_size = row_bytes * cinfo.output_height;
    out->pixels = malloc(out->pixels_size ? out->pixels_size : 1);
    if (!out->pixels) {
        jpeg_destroy_decompress(&cinfo);
        out->pixels_size = 0;
        return CIS_NO_MEMORY;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->pixels + (size_t)cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    // Reads up to EOI, so a file cut after its last scan is reported as truncated, as Pillow does.
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return CIS_OK;
}

void cis_image_free(cis_image *image) {
    free(image->pixels);
    image->pixels = NULL;
    image->pixels_size = 0;
    free(image->rows);
    image->rows = NULL;
}
