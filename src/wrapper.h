/* What bindgen sees of FreeRADIUS 3.2. build.h comes first, as upstream
 * compiles every file with -include freeradius/build.h. */
#include <freeradius/build.h>
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>
#include <freeradius/rad_assert.h>
