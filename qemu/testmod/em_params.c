// SPDX-License-Identifier: GPL-2.0
/*
 * em_params: earlymod's test module for module parameters. One parameter
 * of every type <linux/moduleparam.h> offers, all readable in
 * /sys/module/em_params/parameters/, and one exported function for
 * em_user (dependency order).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>

#include "em_params.h"

static unsigned char p_byte;
module_param(p_byte, byte, 0444);
static short p_short;
module_param(p_short, short, 0444);
static unsigned short p_ushort;
module_param(p_ushort, ushort, 0444);
static int p_int;
module_param(p_int, int, 0444);
static unsigned int p_uint;
module_param(p_uint, uint, 0444);
static long p_long;
module_param(p_long, long, 0444);
static unsigned long p_ulong;
module_param(p_ulong, ulong, 0444);
static unsigned long long p_ullong;
module_param(p_ullong, ullong, 0444);
static unsigned int p_hexint;
module_param(p_hexint, hexint, 0444);
static bool p_bool;
module_param(p_bool, bool, 0444);
static bool p_invbool;
module_param(p_invbool, invbool, 0444);
static int p_bint;
module_param(p_bint, bint, 0444);
static char *p_charp = "unset";
module_param(p_charp, charp, 0444);
static char *p_note = "unset";
module_param(p_note, charp, 0444);

static int p_intarr[4];
static unsigned int p_intarr_n;
module_param_array(p_intarr, int, &p_intarr_n, 0444);
static char *p_strarr[3];
static unsigned int p_strarr_n;
module_param_array(p_strarr, charp, &p_strarr_n, 0444);

/* 16 bytes with the NUL: a longer value is refused with -ENOSPC */
static char p_string[16] = "unset";
module_param_string(p_string, p_string, sizeof(p_string), 0444);

/* What the stored (not the displayed) invbool is, for the record. */
static bool invbool_stored;
module_param_named(invbool_stored, invbool_stored, bool, 0444);

int em_params_magic(void)
{
	return p_int + 1000;
}
EXPORT_SYMBOL_GPL(em_params_magic);

static int __init em_params_init(void)
{
	invbool_stored = p_invbool;
	pr_info("em_params: init p_int=%d p_charp=\"%s\" p_note=\"%s\" p_string=\"%s\" intarr=%u strarr=%u\n",
		p_int, p_charp, p_note, p_string, p_intarr_n, p_strarr_n);
	return 0;
}

static void __exit em_params_exit(void)
{
	pr_info("em_params: exit\n");
}

module_init(em_params_init);
module_exit(em_params_exit);
MODULE_DESCRIPTION("earlymod test: parameters of every type, an exported function");
MODULE_AUTHOR("earlymod");
MODULE_LICENSE("GPL");
