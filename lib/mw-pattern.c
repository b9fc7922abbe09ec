/* lib/mw-pattern.c - placeholder until implemented */
typedef int mw_placeholder_mw_pattern;
