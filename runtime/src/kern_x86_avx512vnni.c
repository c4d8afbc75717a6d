#include "tb_internal.h"
const tb_kernels tb_kernels_avx512vnni = {0};
