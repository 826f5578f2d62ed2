/* Claims a descriptor too small to hold handle(): must be refused. */
#include <switchyard/plugin.h>

static const char *const events[] = {"*", NULL};
SY_PLUGIN_DEFINE = {SY_PLUGIN_ABI_VERSION, 16, "short_struct", "1", events, 0, 0, 0};
