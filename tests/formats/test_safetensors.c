/*
 * test_safetensors.c - the safetensors reader accepts well-formed files, rejects each kind of
 * malformed header with a message naming the problem, and the writer round-trips
 * deterministically.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"

/* ---- helpers ----------------------------------------------------------------------------- */

/* Builds a file image: 8-byte length, header text, then data_len bytes of data (0x11...). */
static uint8_t *make_file(const char *header, size_t data_len, size_t *len)
{
    size_t hlen = strlen(header);
    *len = 8 + hlen + data_len;
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hlen + i] = (uint8_t)(0x11 + i);
    return buf;
}

/* Opens header+data as a buffer; expects failure with status and a message containing
 * needle. */
static void expect_reject(const char *header, size_t data_len, alkfw_status status,
                          const char *needle)
{
    size_t len;
    uint8_t *buf = make_file(header, data_len, &len);
    safetensors_file *f = (safetensors_file *)0x1;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open_buffer(buf, len, &f, &err), status);
    assert_null(f);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' does not contain '%s'", err.message, needle);
    free(buf);
}

static char tmp_dir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/alkfw_test_st_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- reading ----------------------------------------------------------------------------- */

static void reads_valid_header_and_data(void **state)
{
    (void)state;
    const char *h = "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                    "\"a\":{\"dtype\":\"I16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
    size_t len;
    uint8_t *buf = make_file(h, 16, &len);
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open_buffer(buf, len, &f, &err), ALKFW_OK);
    assert_int_equal(safetensors_count(f), 2);
    assert_string_equal(safetensors_tensor_at(f, 0)->name, "b");
    const safetensors_tensor *a = safetensors_find(f, "a");
    assert_non_null(a);
    assert_int_equal(a->dtype, SAFETENSORS_I16);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[1], 2);
    assert_int_equal(a->nbytes, 8);
    assert_int_equal(((const uint8_t *)a->data)[0], 0x11);
    assert_int_equal(((const uint8_t *)safetensors_find(f, "b")->data)[0], 0x11 + 8);
    assert_null(safetensors_find(f, "c"));
    assert_string_equal(safetensors_metadata_get(f, "k"), "v");
    assert_null(safetensors_metadata_get(f, "missing"));
    assert_int_equal(safetensors_metadata_count(f), 2);
    const char *k, *v;
    assert_int_equal(safetensors_metadata_at(f, 0, &k, &v), 0);
    assert_string_equal(k, "format");
    assert_string_equal(v, "pt");
    assert_int_equal(safetensors_metadata_at(f, 2, &k, &v), -1);
    safetensors_close(f);
    free(buf);
}

static void reads_scalar_and_empty_tensors(void **state)
{
    (void)state;
    const char *h = "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                    "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]}}";
    size_t len;
    uint8_t *buf = make_file(h, 8, &len);
    safetensors_file *f = NULL;
    assert_int_equal(safetensors_open_buffer(buf, len, &f, NULL), ALKFW_OK);
    assert_int_equal(safetensors_find(f, "s")->numel, 1);
    assert_int_equal(safetensors_find(f, "e")->nbytes, 0);
    safetensors_close(f);
    free(buf);
}

static void opens_bundled_stories260k(void **state)
{
    (void)state;
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(
        safetensors_open(ALKFW_SOURCE_DIR "/models/stories260k/model.safetensors", &f, &err),
        ALKFW_OK);
    assert_int_equal(safetensors_count(f), 47);
    const safetensors_tensor *t = safetensors_find(f, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_string_equal(safetensors_metadata_get(f, "format"), "pt");
    safetensors_close(f);
}

static void rejects_truncated_file(void **state)
{
    (void)state;
    uint8_t buf[5] = {1, 0, 0, 0, 0};
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open_buffer(buf, sizeof buf, &f, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "truncated"));
}

static void rejects_truncated_data(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
                  ALKFW_ERR_FORMAT, "out of range");
}

static void rejects_header_length_past_end(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file("{}", 0, &len);
    buf[0] = 200;
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open_buffer(buf, len, &f, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "runs past the end"));
    free(buf);
}

static void rejects_absurd_header_length(void **state)
{
    (void)state;
    uint8_t buf[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open_buffer(buf, sizeof buf, &f, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "absurd"));
}

static void rejects_non_json_header(void **state)
{
    (void)state;
    expect_reject("{\"a\":", 0, ALKFW_ERR_FORMAT, "not valid JSON");
    expect_reject("[1,2]   ", 0, ALKFW_ERR_FORMAT, "JSON object");
    expect_reject("{} x", 0, ALKFW_ERR_FORMAT, "trailing");
}

static void rejects_overlapping_offsets(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, ALKFW_ERR_FORMAT, "overlap");
}

static void rejects_out_of_range_offsets(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 8,
                  ALKFW_ERR_FORMAT, "out of range");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
                  ALKFW_ERR_FORMAT, "before begin");
}

static void rejects_dtype_shape_byte_mismatch(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                  ALKFW_ERR_FORMAT, "need 12");
}

static void rejects_unknown_dtype(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                  ALKFW_ERR_FORMAT, "unknown dtype 'F8'");
}

static void rejects_negative_and_absurd_sizes(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1,
                  ALKFW_ERR_FORMAT, "negative");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
                  ALKFW_ERR_FORMAT, "not an integer");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1,
                  ALKFW_ERR_FORMAT, "absurdly large");
    expect_reject("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
                  "\"data_offsets\":[0,1]}}",
                  1, ALKFW_ERR_FORMAT, "overflows");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1,
                  ALKFW_ERR_FORMAT, "negative");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                  "\"data_offsets\":[0,1]}}",
                  1, ALKFW_ERR_UNSUPPORTED, "9 dimensions");
}

static void rejects_duplicate_names(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                  2, ALKFW_ERR_FORMAT, "duplicate tensor name 'a'");
}

static void rejects_malformed_fields(void **state)
{
    (void)state;
    expect_reject("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, ALKFW_ERR_FORMAT, "dtype");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, ALKFW_ERR_FORMAT,
                  "shape");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
                  ALKFW_ERR_FORMAT, "data_offsets");
    expect_reject("{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1,
                  ALKFW_ERR_FORMAT, "shape[0] is not a number");
    expect_reject("{\"a\":7}", 0, ALKFW_ERR_FORMAT, "not an object");
    expect_reject("{\"__metadata__\":{\"k\":1}}", 0, ALKFW_ERR_FORMAT, "not a string");
    expect_reject("{\"__metadata__\":[]}", 0, ALKFW_ERR_FORMAT, "__metadata__");
}

static void open_reports_missing_file(void **state)
{
    (void)state;
    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open("/nonexistent/x.safetensors", &f, &err), ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/x.safetensors"));
}

/* ---- conversion -------------------------------------------------------------------------- */

static void half_conversions_are_exact(void **state)
{
    (void)state;
    assert_true(safetensors_f16_to_f32(0x3c00) == 1.0f);
    assert_true(safetensors_f16_to_f32(0xc000) == -2.0f);
    assert_true(safetensors_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(safetensors_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(safetensors_f16_to_f32(0x7c00)));
    assert_true(safetensors_bf16_to_f32(0x3f80) == 1.0f);
    /* every finite f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        assert_int_equal(safetensors_f32_to_f16(safetensors_f16_to_f32((uint16_t)h)), h);
    }
    /* ties round to even */
    assert_int_equal(safetensors_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    assert_int_equal(safetensors_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    assert_int_equal(safetensors_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
    assert_int_equal(safetensors_f32_to_f16(1e6f), 0x7c00);
}

static void read_f32_converts_and_checks_count(void **state)
{
    (void)state;
    uint16_t bf[3] = {0x3f80, 0x4000, 0xc040};
    int64_t shape[1] = {3};
    safetensors_write_tensor wt = {"x", SAFETENSORS_BF16, 1, shape, bf};
    void *data;
    size_t len;
    assert_int_equal(safetensors_serialize(&wt, 1, NULL, NULL, 0, &data, &len, NULL), ALKFW_OK);
    safetensors_file *f = NULL;
    assert_int_equal(safetensors_open_buffer(data, len, &f, NULL), ALKFW_OK);
    float out[3];
    alkfw_error err = {0};
    assert_int_equal(safetensors_read_f32(safetensors_find(f, "x"), out, 3, &err), ALKFW_OK);
    assert_true(out[0] == 1.0f && out[1] == 2.0f && out[2] == -3.0f);
    assert_int_equal(safetensors_read_f32(safetensors_find(f, "x"), out, 2, &err),
                     ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "'x'"));
    safetensors_close(f);
    free(data);
}

/* ---- writing ----------------------------------------------------------------------------- */

static void write_round_trips_with_metadata(void **state)
{
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6};
    int32_t b[2] = {-7, 9};
    int64_t sa[2] = {2, 3}, sb[1] = {2};
    safetensors_write_tensor t[2] = {{"zeta", SAFETENSORS_F32, 2, sa, a},
                                     {"alpha \"q\"\n", SAFETENSORS_I32, 1, sb, b}};
    const char *keys[2] = {"format", "note"};
    const char *vals[2] = {"alkfw-codebook", "line\none \\ \"quoted\""};
    char path[400];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmp_dir);
    alkfw_error err = {0};
    assert_int_equal(safetensors_write(path, t, 2, keys, vals, 2, &err), ALKFW_OK);

    safetensors_file *f = NULL;
    assert_int_equal(safetensors_open(path, &f, &err), ALKFW_OK);
    assert_int_equal(safetensors_count(f), 2);
    assert_string_equal(safetensors_tensor_at(f, 0)->name, "zeta");
    const safetensors_tensor *ta = safetensors_find(f, "zeta");
    assert_memory_equal(ta->data, a, sizeof a);
    const safetensors_tensor *tb = safetensors_find(f, "alpha \"q\"\n");
    assert_non_null(tb);
    assert_memory_equal(tb->data, b, sizeof b);
    assert_string_equal(safetensors_metadata_get(f, "note"), vals[1]);
    /* header padded to a multiple of 8, so the data area starts 8-aligned */
    const uint8_t *base = (const uint8_t *)ta->data - ta->offset;
    assert_int_equal((uintptr_t)base % 8, 0);
    safetensors_close(f);
}

static void write_is_byte_deterministic_and_matches_serialize(void **state)
{
    (void)state;
    uint8_t a[5] = {1, 2, 3, 4, 5};
    int64_t s[1] = {5};
    safetensors_write_tensor t = {"a", SAFETENSORS_U8, 1, s, a};
    const char *keys[1] = {"k"}, *vals[1] = {"v"};
    char p1[400], p2[400];
    snprintf(p1, sizeof p1, "%s/d1.safetensors", tmp_dir);
    snprintf(p2, sizeof p2, "%s/d2.safetensors", tmp_dir);
    assert_int_equal(safetensors_write(p1, &t, 1, keys, vals, 1, NULL), ALKFW_OK);
    assert_int_equal(safetensors_write(p2, &t, 1, keys, vals, 1, NULL), ALKFW_OK);
    void *mem;
    size_t len;
    assert_int_equal(safetensors_serialize(&t, 1, keys, vals, 1, &mem, &len, NULL), ALKFW_OK);
    const char *expect_header = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"U8\","
                                "\"shape\":[5],\"data_offsets\":[0,5]}}";
    size_t hlen = (strlen(expect_header) + 7) / 8 * 8;
    assert_int_equal(len, 8 + hlen + 5);
    assert_memory_equal((uint8_t *)mem + 8, expect_header, strlen(expect_header));
    for (const char *p = p1; p; p = (p == p1 ? p2 : NULL)) {
        FILE *fp = fopen(p, "rb");
        assert_non_null(fp);
        uint8_t buf[512];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        assert_int_equal(n, len);
        assert_memory_equal(buf, mem, len);
    }
    free(mem);
}

static void write_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t a[1] = {0};
    int64_t s[1] = {1}, neg[1] = {-2};
    safetensors_write_tensor dup[2] = {{"a", SAFETENSORS_U8, 1, s, a},
                                       {"a", SAFETENSORS_U8, 1, s, a}};
    void *mem;
    size_t len;
    alkfw_error err = {0};
    assert_int_equal(safetensors_serialize(dup, 2, NULL, NULL, 0, &mem, &len, &err),
                     ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "duplicate"));
    safetensors_write_tensor bad = {"n", SAFETENSORS_U8, 1, neg, a};
    assert_int_equal(safetensors_serialize(&bad, 1, NULL, NULL, 0, &mem, &len, &err),
                     ALKFW_ERR_ARGUMENT);
    safetensors_write_tensor reserved = {"__metadata__", SAFETENSORS_U8, 1, s, a};
    assert_int_equal(safetensors_serialize(&reserved, 1, NULL, NULL, 0, &mem, &len, &err),
                     ALKFW_ERR_ARGUMENT);
    assert_int_equal(
        safetensors_write("/nonexistent/dir/x.safetensors", dup, 1, NULL, NULL, 0, &err),
        ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/dir/x.safetensors"));
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void checkpoint_reads_shards_through_index(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/sharded", tmp_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    uint8_t a[2] = {1, 2}, b[3] = {3, 4, 5};
    int64_t s2[1] = {2}, s3[1] = {3};
    safetensors_write_tensor ta = {"a", SAFETENSORS_U8, 1, s2, a};
    safetensors_write_tensor tb = {"b", SAFETENSORS_U8, 1, s3, b};
    char path[500];
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    assert_int_equal(safetensors_write(path, &ta, 1, NULL, NULL, 0, NULL), ALKFW_OK);
    snprintf(path, sizeof path, "%s/s2.safetensors", dir);
    assert_int_equal(safetensors_write(path, &tb, 1, NULL, NULL, 0, NULL), ALKFW_OK);
    write_text(dir, "model.safetensors.index.json",
               "{\"metadata\":{},\"weight_map\":{\"a\":\"s1.safetensors\","
               "\"b\":\"s2.safetensors\"}}");
    safetensors_checkpoint *c = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_checkpoint_open(dir, &c, &err), ALKFW_OK);
    assert_int_equal(safetensors_checkpoint_shard_count(c), 2);
    assert_int_equal(((const uint8_t *)safetensors_checkpoint_find(c, "b")->data)[2], 5);
    assert_null(safetensors_checkpoint_find(c, "zz"));
    safetensors_checkpoint_close(c);

    /* a listed tensor missing from its shard, and a shard path leaving the directory */
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s2.safetensors\"}}");
    assert_int_equal(safetensors_checkpoint_open(dir, &c, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "'a' is listed in s2.safetensors but missing"));
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
    assert_int_equal(safetensors_checkpoint_open(dir, &c, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "plain file name"));
    write_text(dir, "model.safetensors.index.json", "{weight_map");
    assert_int_equal(safetensors_checkpoint_open(dir, &c, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "not valid JSON"));
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"missing.safetensors\"}}");
    assert_int_equal(safetensors_checkpoint_open(dir, &c, &err), ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "missing.safetensors"));
}

static void checkpoint_reports_missing_weights(void **state)
{
    (void)state;
    safetensors_checkpoint *c = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_checkpoint_open(tmp_dir, &c, &err), ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "no model.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_valid_header_and_data),
        cmocka_unit_test(reads_scalar_and_empty_tensors),
        cmocka_unit_test(opens_bundled_stories260k),
        cmocka_unit_test(rejects_truncated_file),
        cmocka_unit_test(rejects_truncated_data),
        cmocka_unit_test(rejects_header_length_past_end),
        cmocka_unit_test(rejects_absurd_header_length),
        cmocka_unit_test(rejects_non_json_header),
        cmocka_unit_test(rejects_overlapping_offsets),
        cmocka_unit_test(rejects_out_of_range_offsets),
        cmocka_unit_test(rejects_dtype_shape_byte_mismatch),
        cmocka_unit_test(rejects_unknown_dtype),
        cmocka_unit_test(rejects_negative_and_absurd_sizes),
        cmocka_unit_test(rejects_duplicate_names),
        cmocka_unit_test(rejects_malformed_fields),
        cmocka_unit_test(open_reports_missing_file),
        cmocka_unit_test(half_conversions_are_exact),
        cmocka_unit_test(read_f32_converts_and_checks_count),
        cmocka_unit_test(write_round_trips_with_metadata),
        cmocka_unit_test(write_is_byte_deterministic_and_matches_serialize),
        cmocka_unit_test(write_rejects_bad_input),
        cmocka_unit_test(checkpoint_reads_shards_through_index),
        cmocka_unit_test(checkpoint_reports_missing_weights),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
