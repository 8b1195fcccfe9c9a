// SPDX-License-Identifier: GPL-2.0
/* em_nodev: an init that fails with -ENODEV, like a driver without its device. */
#include <linux/module.h>
#include <linux/kernel.h>

static int __init em_nodev_init(void)
{
	pr_info("em_nodev: init, no device: -ENODEV\n");
	return -ENODEV;
}

module_init(em_nodev_init);
MODULE_DESCRIPTION("earlymod test: init fails with -ENODEV");
MODULE_AUTHOR("earlymod");
MODULE_LICENSE("GPL");
