/* init() refuses: the plugin must not load. */
#include <switchyard/plugin.h>

static int init(const struct sy_plugin_host *h, const char *c, void **s)
{
    (void)h, (void)c, (void)s;
    return 7;
}
static int handle(void *s, const struct sy_event *e, struct sy_plugin_call *c)
{
    (void)s, (void)e, (void)c;
    return SY_OK;
}
static const char *const events[] = {"*", NULL};
SY_PLUGIN_DEFINE = {
    SY_PLUGIN_ABI_VERSION, sizeof(struct sy_plugin), "failing_init", "1", events, init, handle, 0};
