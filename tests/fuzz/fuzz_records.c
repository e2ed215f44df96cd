/*
 * fuzz_records.c - libFuzzer harness for the record readers (JSON Lines,
 * JSON array, CSV, dead-letter files), the employee mapping and the JSON
 * string writer. The first byte picks the format; the rest is the input.
 *
 * Every input must give records or per-record errors, never a crash, a
 * leak or a hang; and what comes out must hold: a record's JSON text is
 * valid JSON and an object, its fields point inside it, positions only
 * move forward, an encoded employee is valid JSON, a quoted string is
 * valid JSON whatever bytes went in.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osc/employee.h"
#include "osc/log.h"
#include "osc/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* want_object: 1 an object, 0 any value, -1 any value and NUL characters allowed */
static void check_json(const char *text, size_t len, int want_object)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | (want_object < 0 ? JSON_ALLOW_NUL : 0), &e);
    /* numbers beyond 64-bit integers or doubles are valid JSON that jansson cannot hold */
    if (!j && (strstr(e.text, "too big") || strstr(e.text, "overflow")))
        return;
    if (!j || (want_object > 0 && !json_is_object(j)))
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum osc_records_format formats[] = {OSC_RECORDS_JSONL, OSC_RECORDS_JSON,
                                                      OSC_RECORDS_CSV, OSC_RECORDS_DEADLETTER,
                                                      OSC_RECORDS_AUTO};
    struct osc_records_reader *r;
    struct osc_employee_map *m;
    struct osc_record rec;
    struct osc_err err;
    struct osc_buf out;
    uint64_t last_off = 0;
    int n, guard = 0;

    if (size < 1)
        return 0;
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    r = osc_records_open_mem((const char *)data + 1, size - 1, "fuzz",
                             formats[data[0] % (sizeof(formats) / sizeof(formats[0]))], &err);
    m = osc_employee_map_new(NULL, "fuzz", "fuzz", &err);
    osc_buf_init(&out, 1u << 24);
    if (!r || !m)
        abort();
    while ((n = osc_records_next(r, &rec, &err)) != 0) {
        if (++guard > 1000000 || (n != 1 && n != OSC_EDATA && n != OSC_ENOMEM && n != OSC_EIO))
            abort();
        if (n != 1 && n != OSC_EDATA)
            break;
        if (rec.offset < last_off || rec.offset > size)
            abort();
        last_off = rec.offset;
        osc_buf_reset(&out);
        if (osc_json_quote(&out, rec.raw ? rec.raw : "", rec.raw ? rec.raw_len : 0) == 0)
            check_json(out.data, out.len, -1); /* raw text may hold a NUL (\u0000) */
        if (n != 1)
            continue;
        if (!rec.json || rec.json[rec.json_len] != '\0')
            abort();
        check_json(rec.json, rec.json_len, 1);
        for (size_t i = 0; i < rec.nfields; i++) {
            const struct osc_record_field *f = &rec.fields[i];
            if (f->key < rec.json || f->key + f->key_len > rec.json + rec.json_len ||
                f->val < rec.json || f->val + f->val_len > rec.json + rec.json_len)
                abort();
            check_json(f->val, f->val_len, 0);
        }
        osc_buf_reset(&out);
        if (osc_employee_encode(m, &rec, &out, &err) == 0)
            check_json(out.data, out.len, 1);
    }
    osc_buf_free(&out);
    osc_employee_map_free(m);
    osc_records_close(r);
    return 0;
}
