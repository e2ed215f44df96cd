/*
 * test_urn.c - the urn:officespace:{type}:id:{id} parser: every type, the
 * canonical round trip, and the malformed spellings it must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "osc/err.h"
#include "osc/urn.h"

static int parse(const char *s, struct osc_urn *u, const char **why)
{
    return osc_urn_parse(s, strlen(s), u, why);
}

static void test_valid(void **state)
{
    static const struct {
        const char *s;
        enum osc_urn_type t;
        int64_t id;
        const char *field;
    } ok[] = {
        {"urn:officespace:site:id:1", OSC_URN_SITE, 1, "siteId"},
        {"urn:officespace:floor:id:42", OSC_URN_FLOOR, 42, "floorId"},
        {"urn:officespace:room:id:1234", OSC_URN_ROOM, 1234, "roomId"},
        {"urn:officespace:neighborhood:id:7", OSC_URN_NEIGHBORHOOD, 7, "neighborhoodId"},
        {"urn:officespace:desk:id:9007199254740991", OSC_URN_DESK, OSC_URN_ID_MAX, "seatId"},
        {"URN:OfficeSpace:room:id:5", OSC_URN_ROOM, 5, "roomId"},
    };
    char buf[OSC_URN_STR_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct osc_urn u = {0};
        const char *why = NULL;
        assert_int_equal(parse(ok[i].s, &u, &why), 0);
        assert_int_equal(u.type, ok[i].t);
        assert_true(u.id == ok[i].id);
        assert_string_equal(osc_urn_input_field(u.type), ok[i].field);
        osc_urn_format(&u, buf, sizeof(buf));
        if (i < 5)
            assert_string_equal(buf, ok[i].s);
    }
}

static void test_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "urn:officespace:",
        "urn:officespace:room",
        "urn:officespace:room:id:",
        "urn:officespace:room:id:0",
        "urn:officespace:room:id:-3",
        "urn:officespace:room:id:+3",
        "urn:officespace:room:id:012",
        "urn:officespace:room:id:12a",
        "urn:officespace:room:id:12 ",
        "urn:officespace:room:id:1.5",
        "urn:officespace:room:id:9007199254740992",
        "urn:officespace:room:id:99999999999999999999999",
        "urn:officespace:Room:id:3",
        "urn:officespace:seat:id:3",
        "urn:officespace:building:id:3",
        "urn:officespace:room:ID:3",
        "urn:officespace:room:3",
        "urn:officespace:room:id:3:extra",
        "urn:other:room:id:3",
        "officespace:room:id:3",
    };
    struct osc_urn u = {OSC_URN_FLOOR, 99};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        assert_int_equal(parse(bad[i], &u, &why), OSC_EINVAL);
        assert_non_null(why);
        /* unchanged on failure */
        assert_int_equal(u.type, OSC_URN_FLOOR);
        assert_true(u.id == 99);
    }
}

static void test_prefix_and_length(void **state)
{
    struct osc_urn u;
    const char *s = "urn:officespace:room:id:123456";

    (void)state;
    assert_true(osc_urn_is_officespace("urn:officespace:x", 17));
    assert_true(osc_urn_is_officespace("URN:OFFICESPACE:", 16));
    assert_false(osc_urn_is_officespace("urn:officespace", 15));
    assert_false(osc_urn_is_officespace("urn:connector:value:1", 21));
    /* only len bytes count: a prefix of a valid URN is parsed as such */
    assert_int_equal(osc_urn_parse(s, strlen(s) - 3, &u, NULL), 0);
    assert_true(u.id == 123);
    assert_int_equal(osc_urn_parse(NULL, 0, &u, NULL), OSC_EINVAL);
}

static void test_names_and_order(void **state)
{
    enum osc_urn_type t;
    struct osc_urn a = {OSC_URN_ROOM, 5}, b = {OSC_URN_ROOM, 6}, c = {OSC_URN_DESK, 1};

    (void)state;
    assert_int_equal(osc_urn_type_parse("neighborhood", &t), 0);
    assert_int_equal(t, OSC_URN_NEIGHBORHOOD);
    assert_int_equal(osc_urn_type_parse("seat", &t), OSC_EINVAL);
    assert_string_equal(osc_urn_type_name(OSC_URN_DESK), "desk");
    assert_string_equal(osc_urn_type_name((enum osc_urn_type)42), "?");
    assert_true(osc_urn_cmp(&a, &b) < 0);
    assert_true(osc_urn_cmp(&b, &a) > 0);
    assert_true(osc_urn_cmp(&a, &a) == 0);
    assert_true(osc_urn_cmp(&b, &c) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_prefix_and_length),
        cmocka_unit_test(test_names_and_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
