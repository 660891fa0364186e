// ALEXNET_HOST_DEVICE marks arithmetic written once for the CPU and for CUDA kernels, so that CPU
// tests exercise exactly what the kernels compute.
#pragma once

#if defined(__CUDACC__)
#define ALEXNET_HOST_DEVICE __host__ __device__
#else
#define ALEXNET_HOST_DEVICE
#endif
