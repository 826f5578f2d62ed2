/* Built for a future ABI major version: must be refused. */
#include <switchyard/plugin.h>

static int handle(void *s, const struct sy_event *e, struct sy_plugin_call *c)
{
    (void)s, (void)e, (void)c;
    return SY_OK;
}
static const char *const events[] = {"*", NULL};
SY_PLUGIN_DEFINE = {
    (2u << 16) | 0, sizeof(struct sy_plugin), "wrong_abi", "1", events, 0, handle, 0};
