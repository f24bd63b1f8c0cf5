#ifndef DEMUCSD_COPENBLAS_SHIM_H
#define DEMUCSD_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
