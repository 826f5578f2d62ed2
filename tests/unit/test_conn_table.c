/* Per-address connection counts against a plain model, through collisions and deletions. */
#include <stdlib.h>
#include <sys/socket.h>

#include "check.h"
#include "http/conn_table.h"

#define ADDRS 3000
#define LIVE 200 /* distinct addresses with connections at once, at most */

int main(void)
{
    struct sy_conn_table *t = sy_conn_table_new(LIVE);
    CHECK(t != NULL);
    static struct sy_addr addrs[ADDRS];
    static int model[ADDRS];
    for (int i = 0; i < ADDRS; i++) {
        addrs[i].family = i % 3 ? AF_INET : AF_INET6;
        addrs[i].b[0] = (unsigned char)(i >> 8);
        addrs[i].b[1] = (unsigned char)i;
        addrs[i].b[15] = (unsigned char)(i * 7);
    }
    unsigned seed = 7;
    int live = 0, refused = 0;
    for (int step = 0; step < 400000; step++) {
        int i = rand_r(&seed) % ADDRS;
        if (rand_r(&seed) % 2 && (model[i] > 0 || live < LIVE)) {
            bool ok = sy_conn_table_enter(t, &addrs[i], 4);
            CHECK(ok == (model[i] < 4));
            if (ok) {
                live += model[i] == 0;
                model[i]++;
            } else {
                refused++;
            }
        } else if (model[i] > 0) {
            sy_conn_table_leave(t, &addrs[i]);
            model[i]--;
            live -= model[i] == 0;
        }
        if (step % 1000 == 0) {
            for (int k = 0; k < ADDRS; k++) {
                if (sy_conn_table_count(t, &addrs[k]) != model[k]) {
                    CHECK(!"count differs from the model");
                    break;
                }
            }
        }
    }
    CHECK(refused > 0);
    /* the same bytes in the other family are another address */
    struct sy_addr v4 = {.family = AF_INET}, v6 = {.family = AF_INET6};
    CHECK(sy_conn_table_enter(t, &v4, 1));
    CHECK(sy_conn_table_enter(t, &v6, 1));
    CHECK(!sy_conn_table_enter(t, &v4, 1));
    sy_conn_table_free(t);
    CHECK_DONE();
}
