//! The builtin k-means kernel: [`ifp_kernel_math::KMeans`] exported as an `ifp:kernel` component.

type Component = ifp_kernel_guest::Kernel<ifp_kernel_math::KMeans>;
ifp_kernel_guest::export!(Component with_types_in ifp_kernel_guest);
