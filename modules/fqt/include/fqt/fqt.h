/* fqt: int8 on-device training for Cortex-M. The whole public API. */
#ifndef FQT_FQT_H_
#define FQT_FQT_H_

#include "fqt/config.h"
#include "fqt/kernels.h"
#include "fqt/memory_plan.h"
#include "fqt/model.h"
#include "fqt/session.h"
#include "fqt/status.h"

#define FQT_VERSION_STRING "0.1.0"

#endif /* FQT_FQT_H_ */
