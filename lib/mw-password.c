/* lib/mw-password.c - placeholder until implemented */
typedef int mw_placeholder_mw_password;
