// libjpeg-turbo (Debian libjpeg62-turbo-dev) and libpng (libpng-dev), as Swift sees them. Swift never
// calls into them directly: both report errors by longjmp, so Sources/CImageSupport drives them.
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
