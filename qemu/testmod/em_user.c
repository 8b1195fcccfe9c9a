// SPDX-License-Identifier: GPL-2.0
/*
 * em_user: calls em_params' exported em_params_magic(), so depmod makes
 * em_params its dependency and a loader must load em_params first.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>

#include "em_params.h"

/* em_params_magic()'s answer at init, for the test to read back. */
static int got;
module_param(got, int, 0444);

static int __init em_user_init(void)
{
	got = em_params_magic();
	pr_info("em_user: init em_params_magic()=%d\n", got);
	return 0;
}

static void __exit em_user_exit(void)
{
}

module_init(em_user_init);
module_exit(em_user_exit);
MODULE_DESCRIPTION("earlymod test: uses em_params' exported symbol");
MODULE_AUTHOR("earlymod");
MODULE_LICENSE("GPL");
