// SPDX-License-Identifier: GPL-2.0
/* em_sleep2: em_sleep under a second name, to load two at once. */
#include "em_sleep.c"
