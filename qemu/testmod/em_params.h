/* SPDX-License-Identifier: GPL-2.0 */
/* em_params' exported function, called by em_user. */
#ifndef EM_PARAMS_H
#define EM_PARAMS_H
int em_params_magic(void);
#endif
