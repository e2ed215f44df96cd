/*
 * employee.h - input records to OfficeSpace employee batch-import records.
 *
 * The batch import (POST /api/1/employee_batch_imports) takes PascalCase
 * keys: EmployeeId, Source, FirstName, LastName, Email, Title, Department,
 * WorkPhone, Extension, Bio, Photo, ImageData, StartDate, EndDate,
 * ShowInVd, Udf0..Udf34. A map turns input column names into those keys:
 * PascalCase names pass through; common HR names are recognised after
 * folding case and dropping '_', '-', ' ' and '.' (employee_id, id,
 * first_name, firstName, surname, email, work_phone, job_title, ...); a
 * single name/full_name column is split into FirstName and LastName at the
 * last space; a destination's `fields:` map overrides all of that (a target
 * of "" or "-" drops the column; an unknown target is sent as written).
 *
 * Encoding copies value text without building a DOM: strings pass through,
 * numbers and booleans become strings (OfficeSpace's own scripts send
 * strings), null stays null. Source is always the destination's
 * source_name. EmployeeId falls back to Email; a record with neither is
 * rejected.
 */
#ifndef OSC_EMPLOYEE_H
#define OSC_EMPLOYEE_H

#include "osc/buf.h"
#include "osc/config.h"
#include "osc/err.h"
#include "osc/records.h"

struct osc_employee_map;

/*
 * New map. fields (may be NULL) is copied; source_name is copied.
 * Caller frees with osc_employee_map_free(). NULL with err set on ENOMEM.
 * destination names the destination in log lines.
 */
struct osc_employee_map *osc_employee_map_new(const struct osc_strmap *fields,
                                              const char *source_name, const char *destination,
                                              struct osc_err *err);
void osc_employee_map_free(struct osc_employee_map *m);

/*
 * Append rec as one batch record (a compact JSON object) to out. Returns 0;
 * OSC_EDATA when the record has no usable EmployeeId or Email (err->msg is
 * the reason, without file or line; out unchanged); OSC_ENOMEM/OSC_ETOOBIG.
 */
int osc_employee_encode(struct osc_employee_map *m, const struct osc_record *rec,
                        struct osc_buf *out, struct osc_err *err);

/*
 * The EmployeeId and Email value texts (JSON, borrowed from the record) of
 * the last record encoded successfully; *len 0 when there is none. Valid
 * until the record is released.
 */
void osc_employee_last_keys(const struct osc_employee_map *m, const char **id, size_t *id_len,
                            const char **email, size_t *email_len);

/* The OfficeSpace key an input column maps to by default, or NULL (tests, docs). */
const char *osc_employee_default_key(const char *column);

#endif
