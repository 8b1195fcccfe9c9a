// SPDX-License-Identifier: GPL-2.0
/*
 * em_sleep: an init that sleeps `ms` milliseconds (a controlled load time
 * for the parallel loader). It records when its init started and ended
 * (boot-time clock, microseconds) so a test can tell whether two such
 * modules were loaded at the same time. em_sleep2 is this file under
 * another name.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/delay.h>
#include <linux/timekeeping.h>

static unsigned int ms = 100;
module_param(ms, uint, 0444);
static unsigned long long t_start_us, t_end_us;
module_param(t_start_us, ullong, 0444);
module_param(t_end_us, ullong, 0444);

static int __init em_sleep_init(void)
{
	t_start_us = ktime_get_boottime_ns() / 1000;
	msleep(ms);
	t_end_us = ktime_get_boottime_ns() / 1000;
	pr_info("%s: slept %u ms\n", KBUILD_MODNAME, ms);
	return 0;
}

static void __exit em_sleep_exit(void)
{
}

module_init(em_sleep_init);
module_exit(em_sleep_exit);
MODULE_DESCRIPTION("earlymod test: init sleeps for ms milliseconds");
MODULE_AUTHOR("earlymod");
MODULE_LICENSE("GPL");
