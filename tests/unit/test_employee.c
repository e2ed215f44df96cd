/*
 * test_employee.c - HR records to OfficeSpace batch-import records: the
 * built-in column names, PascalCase pass-through, name splitting, the
 * fields: override, EmployeeId falling back to Email, and rejection of
 * records with neither.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "osc/employee.h"
#include "osc/log.h"

/* EmployeeId and Email (JSON text) of the last record encode() encoded */
static char last_id[256], last_email[256];

static int encode(struct osc_employee_map *m, const char *json, char *out, size_t cap,
                  struct osc_err *err)
{
    struct osc_records_reader *r =
        osc_records_open_mem(json, strlen(json), "t.jsonl", OSC_RECORDS_JSONL, NULL);
    struct osc_record rec;
    struct osc_buf b;
    int rc;

    osc_buf_init(&b, 1 << 20);
    assert_int_equal(osc_records_next(r, &rec, NULL), 1);
    rc = osc_employee_encode(m, &rec, &b, err);
    snprintf(out, cap, "%s", osc_buf_str(&b));
    {
        /* the keys point into the record: copy them before it is released */
        const char *id, *email;
        size_t id_len, email_len;
        osc_employee_last_keys(m, &id, &id_len, &email, &email_len);
        snprintf(last_id, sizeof(last_id), "%.*s", (int)id_len, id_len ? id : "");
        snprintf(last_email, sizeof(last_email), "%.*s", (int)email_len, email_len ? email : "");
    }
    osc_buf_free(&b);
    osc_records_close(r);
    return rc;
}

static void test_default_mapping(void **state)
{
    struct osc_employee_map *m = osc_employee_map_new(NULL, "HR", "employees", NULL);
    char out[1024];
    struct osc_err err;
    (void)state;

    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    assert_int_equal(
        encode(m,
               "{\"employee_id\":1001,\"first_name\":\"Alice\",\"last_name\":\"Smith\","
               "\"email\":\"alice@example.com\",\"department\":\"R&D\",\"title\":\"Eng\","
               "\"work_phone\":\"+1 555\",\"start_date\":\"2024-01-02\",\"udf3\":\"x\","
               "\"manager\":\"bob\",\"extension\":null,\"Udf24\":true}",
               out, sizeof(out), &err),
        0);
    assert_string_equal(out,
                        "{\"EmployeeId\":\"1001\",\"Source\":\"HR\",\"FirstName\":\"Alice\","
                        "\"LastName\":\"Smith\",\"Email\":\"alice@example.com\",\"Title\":\"Eng\","
                        "\"Department\":\"R&D\",\"WorkPhone\":\"+1 555\",\"Extension\":null,"
                        "\"StartDate\":\"2024-01-02\",\"Udf3\":\"x\",\"Udf24\":\"true\"}");
    /* camelCase, a full name, Email as the id, Source overridden */
    assert_int_equal(
        encode(m,
               "{\"firstName\":\"\",\"name\":\"Mary Ann  O'Neil\",\"Email\":\"m@x.io\","
               "\"Source\":\"other\",\"id\":\"\"}",
               out, sizeof(out), &err),
        0);
    assert_string_equal(out,
                        "{\"EmployeeId\":\"m@x.io\",\"Source\":\"HR\",\"FirstName\":\"Mary Ann\","
                        "\"LastName\":\"O'Neil\",\"Email\":\"m@x.io\"}");
    assert_int_equal(encode(m, "{\"first_name\":\"No\",\"last_name\":\"Id\",\"email\":\"\"}", out,
                            sizeof(out), &err),
                     OSC_EDATA);
    assert_non_null(strstr(err.msg, "no EmployeeId or Email"));
    assert_string_equal(osc_employee_default_key("Work-Phone"), "WorkPhone");
    assert_string_equal(osc_employee_default_key("surname"), "LastName");
    assert_null(osc_employee_default_key("manager"));
    osc_employee_map_free(m);
}

static void test_fields_override(void **state)
{
    char *keys[] = {"emp_no", "manager_email", "email", "Cost Center"};
    char *vals[] = {"EmployeeId", "Udf1", "-", "CostCenter"};
    struct osc_strmap f = {keys, vals, 4};
    struct osc_employee_map *m = osc_employee_map_new(&f, "osconnect", "employees", NULL);
    char out[1024];
    struct osc_err err;
    (void)state;

    assert_int_equal(encode(m,
                            "{\"emp_no\":\"E7\",\"email\":\"hidden@x\",\"manager_email\":\"b@x\","
                            "\"Cost Center\":\"42\",\"title\":\"T\"}",
                            out, sizeof(out), &err),
                     0);
    assert_string_equal(out, "{\"EmployeeId\":\"E7\",\"Source\":\"osconnect\",\"Title\":\"T\","
                             "\"Udf1\":\"b@x\",\"CostCenter\":\"42\"}");
    osc_employee_map_free(m);
}

/* Output is in table order whatever the column order; extras last; a name fills only gaps. */
static void test_order_and_keys(void **state)
{
    char *keys[] = {"office", "id2"}, *vals[] = {"Location", ""};
    struct osc_strmap f = {keys, vals, 2};
    struct osc_employee_map *m = osc_employee_map_new(&f, "HR", "employees", NULL);
    char out[1024];
    struct osc_err err;
    (void)state;

    assert_int_equal(encode(m,
                            "{\"udf3\":\"u3\",\"office\":\"HQ\",\"email\":\"A@x.io\","
                            "\"name\":\"Ann Marie Lee\",\"department\":\"R&D\","
                            "\"employee_id\":7,\"id2\":\"x\",\"last_name\":\"Kept\"}",
                            out, sizeof(out), &err),
                     0);
    assert_string_equal(out, "{\"EmployeeId\":\"7\",\"Source\":\"HR\",\"FirstName\":\"Ann Marie\","
                             "\"LastName\":\"Kept\",\"Email\":\"A@x.io\",\"Department\":\"R&D\","
                             "\"Udf3\":\"u3\",\"Location\":\"HQ\"}");
    /* the keys the duplicate check uses: EmployeeId and Email as JSON text */
    assert_string_equal(last_id, "7");
    assert_string_equal(last_email, "\"A@x.io\"");
    /* the same map again: nothing left over from the previous record */
    assert_int_equal(encode(m, "{\"email\":\"b@x.io\",\"name\":\"Bo\"}", out, sizeof(out), &err),
                     0);
    assert_string_equal(out, "{\"EmployeeId\":\"b@x.io\",\"Source\":\"HR\",\"FirstName\":\"Bo\","
                             "\"Email\":\"b@x.io\"}");
    osc_employee_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_mapping),
        cmocka_unit_test(test_fields_override),
        cmocka_unit_test(test_order_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
