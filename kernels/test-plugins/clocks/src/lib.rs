//! Sandbox test plugin: [`ifp_hostile::Clocks`] exported as an `ifp:kernel` component.

use ifp_hostile::ifp_kernel_guest;

type Component = ifp_kernel_guest::Kernel<ifp_hostile::Hostile<ifp_hostile::Clocks>>;
ifp_kernel_guest::export!(Component with_types_in ifp_kernel_guest);
