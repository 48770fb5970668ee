// libzip (Debian libzip-dev) and zlib, which libzip-dev pulls in (crc32 for stored entries we map).
#include <zip.h>
#include <zlib.h>
