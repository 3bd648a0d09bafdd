//! The package graph: which workspace packages depend on which.

use std::collections::BTreeSet;

use crate::workspace::Workspace;

#[derive(Debug)]
pub(crate) struct PackageGraph {
    /// `deps[i]`: indices of the packages package `i` depends on directly.
    pub(crate) deps: Vec<Vec<usize>>,
    /// `dependents[i]`: indices of the packages that depend on package `i`.
    pub(crate) dependents: Vec<Vec<usize>>,
}

impl PackageGraph {
    pub(crate) fn new(ws: &Workspace) -> PackageGraph {
        let n = ws.packages.len();
        let mut deps = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        for (i, p) in ws.packages.iter().enumerate() {
            for d in &p.workspace_deps {
                if let Some(j) = ws.package_by_name(d) {
                    deps[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
        PackageGraph { deps, dependents }
    }

    /// Every package reachable from `start` along `edges`, excluding `start`.
    fn reachable(start: usize, edges: &[Vec<usize>]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if seen.insert(j) {
                    stack.push(j);
                }
            }
        }
        seen.remove(&start);
        seen
    }

    pub(crate) fn transitive_deps(&self, pkg: usize) -> BTreeSet<usize> {
        Self::reachable(pkg, &self.deps)
    }

    pub(crate) fn transitive_dependents(&self, pkg: usize) -> BTreeSet<usize> {
        Self::reachable(pkg, &self.dependents)
    }
}
