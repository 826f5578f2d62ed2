/*
 * A working plugin whose constructor leaves a mark: the file named by
 * SY_TEST_CONSTRUCTOR_MARK gets one line each time the library is mapped.
 * The loader must never map a file it refuses, so a refused copy leaves no mark.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <switchyard/plugin.h>

__attribute__((constructor)) static void leave_mark(void)
{
    const char *path = getenv("SY_TEST_CONSTRUCTOR_MARK");
    if (path != NULL) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t n = write(fd, "ran\n", 4);
            (void)n;
            close(fd);
        }
    }
}

static int handle(void *state, const struct sy_event *ev, struct sy_plugin_call *call)
{
    (void)state;
    (void)ev;
    (void)call;
    return SY_OK;
}

static const char *const events[] = {"scm.*", NULL};

SY_PLUGIN_DEFINE = {SY_PLUGIN_ABI_VERSION,
                    sizeof(struct sy_plugin),
                    "constructor",
                    "1.0",
                    events,
                    NULL,
                    handle,
                    NULL};
