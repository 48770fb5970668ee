// libzip, as Debian's libzip-dev installs it.
#include <zip.h>
