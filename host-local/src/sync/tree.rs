//! The fixed order in which an iteration's partials are summed: a tree over function
//! indices of at most two levels, so that no function fetches or merges more than about
//! `√F` partials however many functions there are.
//!
//! Up to [`FLAT`] functions the tree is flat: the reducer sums every function's partial in
//! function order (the protocol of a few functions, unchanged). Beyond, functions form
//! groups of `g = max(FLAT, ⌈√F⌉)` consecutive indices; the last member of a group to
//! arrive sums the group's partials in function order and passes that sum on, and the
//! reducer sums the group sums in group order. The grouping depends on `F` only, so the
//! total is the same bits whatever the arrival order and whichever function merges or
//! reduces ([`Tree::root_parts`] computes it in one place, for the in-process store and the
//! tests).

use std::ops::Range;

use crate::function::{sum_in_order, PartialsMismatch};

/// Functions whose partials the reducer sums directly, without groups.
pub const FLAT: u32 = 16;

/// The summation tree of a job with `functions` functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tree {
    functions: u32,
    group: u32,
}

impl Tree {
    pub fn new(functions: u32) -> Self {
        let functions = functions.max(1);
        let group = if functions <= FLAT { functions } else { FLAT.max((functions as f64).sqrt().ceil() as u32) };
        Self { functions, group }
    }

    /// The tree without groups, for any number of functions (the census gathers every
    /// function's entry: they are not summed).
    pub fn flat(functions: u32) -> Self {
        let functions = functions.max(1);
        Self { functions, group: functions }
    }

    /// No groups: the reducer gets every function's partial.
    pub fn is_flat(&self) -> bool {
        self.group >= self.functions
    }

    /// Functions per group (the last group may have fewer).
    pub fn group_size(&self) -> u32 {
        self.group
    }

    /// Groups below the root (`1` when flat: the root is the only node).
    pub fn groups(&self) -> u32 {
        if self.is_flat() {
            1
        } else {
            self.functions.div_ceil(self.group)
        }
    }

    /// The group of function `w`.
    pub fn group_of(&self, w: u32) -> u32 {
        if self.is_flat() {
            0
        } else {
            w / self.group
        }
    }

    /// The functions of group `g`, in summation order.
    pub fn members(&self, g: u32) -> Range<u32> {
        if self.is_flat() {
            0..self.functions
        } else {
            g * self.group..((g + 1) * self.group).min(self.functions)
        }
    }

    /// The parts the reducer sums in order (with [`sum_in_order`]): every function's
    /// partial when flat, else every group's in-order sum, in group order. `parts` holds
    /// every function's partial in function order.
    pub fn root_parts(&self, parts: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>, PartialsMismatch> {
        if self.is_flat() {
            return Ok(parts);
        }
        (0..self.groups())
            .map(|g| {
                let m = self.members(g);
                sum_in_order(&parts[m.start as usize..m.end as usize])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let t = Tree::new(16);
        assert!(t.is_flat());
        assert_eq!((t.groups(), t.members(0), t.group_of(15)), (1, 0..16, 0));
        let t = Tree::new(17);
        assert_eq!((t.group_size(), t.groups(), t.members(1), t.group_of(16)), (16, 2, 16..17, 1));
        let t = Tree::new(256);
        assert_eq!((t.group_size(), t.groups(), t.members(15)), (16, 16, 240..256));
        let t = Tree::new(400);
        assert_eq!((t.group_size(), t.groups(), t.members(19)), (20, 20, 380..400));
        let t = Tree::new(401);
        assert_eq!((t.group_size(), t.groups(), t.members(19)), (21, 20, 399..401));
    }

    #[test]
    fn the_total_is_the_group_sums_summed_in_group_order() {
        // Values whose sum depends on the order of the additions.
        let parts: Vec<Vec<f64>> = (0..20).map(|i| vec![if i % 2 == 0 { 1e16 } else { 1.0 + i as f64 }]).collect();
        let tree = Tree::new(20);
        let root = tree.root_parts(parts.clone()).unwrap();
        assert_eq!(root.len(), 2);
        let mut first = parts[0][0];
        (1..16).for_each(|i| first += parts[i][0]);
        let mut second = parts[16][0];
        (17..20).for_each(|i| second += parts[i][0]);
        assert_eq!(root, vec![vec![first], vec![second]]);
        assert_eq!(sum_in_order(&root).unwrap(), vec![first + second]);
        let flat = Tree::new(16).root_parts(parts[..16].to_vec()).unwrap();
        assert_eq!(flat, parts[..16].to_vec(), "up to 16 functions the reducer gets every partial");
    }
}
