/* empty.c - keeps a library target valid while its folder has no sources yet. */
typedef int osc_empty_translation_unit;
