/* lib/mw-config.c - placeholder until implemented */
typedef int mw_placeholder_mw_config;
