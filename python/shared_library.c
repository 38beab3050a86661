/* libattnscope.so is the static library linked whole into a shared object, for the Python
 * package (ctypes). This file only gives CMake the source a shared library target needs. */
#include "attnscope/core.h"

const char *ats_shared_library_tag(void);
const char *ats_shared_library_tag(void) {
    return "attnscope";
}
