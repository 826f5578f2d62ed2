#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/retry.h"
#include "metrics.h"
#include "unizo/client.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/record.h"

struct sy_unizo {
    const struct sy_config *cfg;
    CURL *curl;
    unsigned seed;
    /* filled by the header callback for the current attempt */
    double retry_after_s; /* < 0 = absent */
};

static const struct sy_unizo_integration *find_integration(const struct sy_config *cfg,
                                                           const char *name)
{
    for (size_t i = 0; name && i < cfg->unizo.n_integrations; i++) {
        if (strcmp(cfg->unizo.integrations[i].name, name) == 0) {
            return &cfg->unizo.integrations[i];
        }
    }
    return NULL;
}

void sy_unizo_defaults(const struct sy_unizo *u, const char *integration, const char **organization,
                       const char **collection)
{
    const struct sy_unizo_integration *in = find_integration(u->cfg, integration);
    *organization = in ? in->organization : NULL;
    *collection = in ? in->collection : NULL;
}

struct sy_unizo *sy_unizo_new(const struct sy_config *cfg)
{
    struct sy_unizo *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return NULL;
    }
    u->cfg = cfg;
    u->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)u;
    if (cfg->unizo.api_key != NULL && (u->curl = curl_easy_init()) == NULL) {
        free(u);
        return NULL;
    }
    return u;
}

void sy_unizo_free(struct sy_unizo *u)
{
    if (u != NULL) {
        if (u->curl) {
            curl_easy_cleanup(u->curl);
        }
        free(u);
    }
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sy_buf *b = arg;
    return sy_buf_append(b, data, size * n) == 0 ? size * n : 0; /* 0 aborts: over the cap */
}

/* "Retry-After: 2", "Retry-After: <HTTP-date>", "X-RateLimit-Reset-After: 1.5" */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct sy_unizo *u = arg;
    size_t len = size * n;
    char line[256];
    if (len >= sizeof(line)) {
        return len;
    }
    memcpy(line, data, len);
    line[len] = '\0';
    char *colon = strchr(line, ':');
    if (colon == NULL) {
        return len;
    }
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    v[strcspn(v, "\r\n")] = '\0';
    double secs = -1;
    if (strcasecmp(line, "retry-after") == 0 || strcasecmp(line, "x-ratelimit-reset-after") == 0) {
        char *end = NULL;
        double d = strtod(v, &end);
        if (end != v && *end == '\0' && d >= 0) {
            secs = d;
        } else {
            time_t when = curl_getdate(v, NULL);
            if (when > 0) {
                secs = difftime(when, time(NULL));
                secs = secs < 0 ? 0 : secs;
            }
        }
    }
    if (secs >= 0 && secs > u->retry_after_s) {
        u->retry_after_s = secs;
    }
    return len;
}

static bool retryable_status(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

static void sleep_s(double s)
{
    if (s <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Record mode: one line per call with what the rule sent and got back (never the key). */
static void record(const struct sy_unizo *u, const struct sy_unizo_request *req,
                   const struct sy_unizo_response *resp)
{
    const char *dir = u->cfg->record_dir;
    if (dir == NULL || req->event_id == NULL) {
        return;
    }
    json_t *request = req->body ? json_loads(req->body, JSON_DECODE_ANY, NULL) : NULL;
    json_t *response = resp->len ? json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL) : NULL;
    if (response == NULL && resp->body != NULL) {
        response = json_stringn(resp->body, resp->len);
    }
    json_t *line = json_pack(
        "{s:s?, s:s, s:s, s:s?, s:s, s:s?, s:o?, s:I, s:o?, s:b}", "key", req->idempotency_key,
        "method", req->method, "path", req->path, "query", req->query, "apikey", "(redacted)",
        "integration", req->integration, "request", request, "status", (json_int_t)resp->status,
        "response", response, "dry_run", resp->dry_run);
    char *s = line ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (s != NULL) {
        size_t n = strlen(s);
        s[n] = '\n'; /* json_dumps leaves room for the terminator it wrote */
        sy_record_exchange(dir, req->event_id, s, n + 1);
    }
    free(s);
    json_decref(line);
}

/* Nothing is sent: the answer says so, with an id rules can store ("dry-run:<key>"). */
static int dry_run(struct sy_unizo *u, const struct sy_unizo_request *req,
                   struct sy_unizo_response *resp)
{
    sy_log(SY_LOG_INFO, "unizo dry-run (no api_key): not sent", "method", req->method, "path",
           req->path, "query", req->query, "integration", req->integration, "body", req->body,
           NULL);
    struct sy_buf b;
    sy_buf_init(&b, 4096);
    char id[700];
    snprintf(id, sizeof(id), "dry-run:%s", req->idempotency_key ? req->idempotency_key : "");
    sy_buf_puts(&b, "{\"dry_run\":true,\"id\":");
    sy_buf_json_string(&b, id, strlen(id));
    sy_buf_puts(&b, "}");
    resp->dry_run = true;
    resp->status = 200;
    resp->body = b.failed ? NULL : b.data;
    resp->len = b.failed ? 0 : b.len;
    if (b.failed) {
        sy_buf_dispose(&b);
    }
    record(u, req, resp);
    return resp->body ? SY_OK : SY_ENOMEM;
}

int sy_unizo_call(struct sy_unizo *u, const struct sy_unizo_request *req,
                  struct sy_unizo_response *resp)
{
    const struct sy_config *cfg = u->cfg;
    memset(resp, 0, sizeof(*resp));
    if (cfg->unizo.api_key == NULL) {
        return dry_run(u, req, resp);
    }
    struct sy_buf url, body;
    sy_buf_init(&url, 16384);
    sy_buf_printf(&url, "%s%s%s%s", cfg->unizo.base_url, req->path, req->query ? "?" : "",
                  req->query ? req->query : "");
    sy_buf_init(&body, (size_t)cfg->unizo.max_response);

    struct curl_slist *hdrs = NULL;
    char line[1200];
    snprintf(line, sizeof(line), "apikey: %s", cfg->unizo.api_key);
    hdrs = curl_slist_append(hdrs, line);
    explicit_bzero(line, sizeof(line));
    if (req->integration != NULL) {
        const struct sy_unizo_integration *in = find_integration(cfg, req->integration);
        snprintf(line, sizeof(line), "integrationId: %s", in ? in->id : req->integration);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (req->idempotency_key != NULL) {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", req->idempotency_key);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "content-type: application/json");
    hdrs = curl_slist_append(hdrs, "accept: application/json");
    hdrs = curl_slist_append(hdrs, "expect:");

    CURL *c = u->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (req->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_USERAGENT, "switchyard/" SY_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->unizo.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->unizo.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->unizo.max_response);
    if (cfg->unizo.ca_file != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->unizo.ca_file);
    }
    /* http_proxy, https_proxy and no_proxy are read by libcurl itself */

    int rc = SY_EUNAVAIL;
    for (int attempt = 0; attempt < cfg->unizo.attempts; attempt++) {
        sy_buf_reset(&body);
        u->retry_after_s = -1;
        double t0 = sy_mono_s();
        CURLcode cc = curl_easy_perform(c);
        double took = sy_mono_s() - t0;
        resp->attempts++;
        long status = 0;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            resp->error[0] = '\0';
        } else {
            snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(cc));
        }
        resp->status = status;
        sy_metrics_unizo(req->endpoint ? req->endpoint : "request", status, took, attempt > 0);
        if (cc == CURLE_OK && !retryable_status(status)) {
            rc = SY_OK;
            break;
        }
        if (cc == CURLE_OK) {
            rc = SY_OK; /* an answer, if the last one */
        } else if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED ||
                   cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ||
                   cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_PEER_FAILED_VERIFICATION) {
            rc = SY_EUNAVAIL; /* not a passing condition: do not retry */
            break;
        } else {
            rc = SY_EUNAVAIL;
        }
        struct sy_backoff policy = {.base_ms = cfg->unizo.backoff_base_ms,
                                    .cap_ms = cfg->unizo.backoff_cap_ms,
                                    .max_retries = (unsigned)(cfg->unizo.attempts - 1),
                                    .full_jitter = true};
        double r = (double)rand_r(&u->seed) / ((double)RAND_MAX + 1.0);
        int64_t wait_ms = sy_backoff_delay(
            &policy, (unsigned)attempt, r,
            u->retry_after_s >= 0 ? (int64_t)(u->retry_after_s * 1000.0) : -1);
        if (wait_ms < 0) {
            break;
        }
        double wait = (double)wait_ms / 1000.0;
        char st[16], w[32];
        snprintf(st, sizeof(st), "%ld", status);
        snprintf(w, sizeof(w), "%.2fs", wait);
        sy_log(SY_LOG_WARN, "unizo call will be retried", "method", req->method, "path", req->path,
               "status", status ? st : NULL, "error", status ? NULL : resp->error, "wait", w, NULL);
        sleep_s(wait);
    }
    curl_slist_free_all(hdrs);
    sy_buf_dispose(&url);
    resp->len = body.len;
    resp->body = body.data ? body.data : strdup("");
    if (body.failed && resp->status != 0) {
        snprintf(resp->error, sizeof(resp->error), "the response is larger than %llu bytes",
                 (unsigned long long)cfg->unizo.max_response);
    }
    record(u, req, resp);
    return rc;
}
