//! Tiles: how the tree's complete nodes are persisted.
//!
//! The tree is cut into horizontal bands of [`TILE_HEIGHT`] = 8 levels. A tile at *tile level*
//! `L` and index `N` covers the 256 nodes of tree level `8L` numbered `256N .. 256N+255` (its
//! "base") and stores **every complete node inside it**, levels `8L` to `8L+8`, in the order in
//! which they complete: after base node `j` come the parents that `j` completes. With this order
//! a partial tile is a byte prefix of the full tile, so a tile only ever grows by appending.
//!
//! ```text
//!  tile (L=1, N=0): tree levels 8..16, base = level-8 nodes 0..255
//!  tile (L=0, N=0): tree levels 0..8,  base = leaf hashes 0..255     tile (L=0, N=1) ...
//! ```
//!
//! A tile with `w` base nodes holds `2w - popcount(w)` hashes (511 = 16,352 bytes when full).
//! Node `(k, j)` (sub-level `k`, index `j` inside the tile) sits at position
//! `2m - popcount(m) + k` with `m = ((j+1) << k) - 1`, its last base node.
//!
//! A proof for a tree of 10M leaves reads at most two tiles per tile level (the one on the leaf's
//! path and the rightmost one), i.e. a handful of rows, instead of one row per node.

use crate::hash::{HASH_LEN, Hash, node_hash};
use crate::tree::NodeId;

/// Number of tree levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Number of base nodes in a full tile (`2^TILE_HEIGHT`).
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// Identifies a tile: tile level (`tree level / 8` of its base) and index from the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level: the tile's base is tree level `8 * level`.
    pub level: u8,
    /// Index of the tile within its tile level.
    pub index: u64,
}

/// Number of hashes stored in a tile with `width` base nodes.
pub const fn hashes_in_tile(width: u64) -> u64 {
    2 * width - width.count_ones() as u64
}

/// Where a complete tree node lives: its tile, its position inside the tile, and how many base
/// nodes the tile must have for the node to be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLocation {
    /// The tile holding the node.
    pub tile: TileId,
    /// Index of the node's hash among the tile's hashes.
    pub position: usize,
    /// Minimum tile width (base nodes) that contains the node.
    pub min_width: u64,
}

/// Locates a complete node in the tile layout.
pub fn locate(node: NodeId) -> NodeLocation {
    let tile_level = node.level / TILE_HEIGHT;
    let k = node.level % TILE_HEIGHT;
    let per_tile = 1u64 << (TILE_HEIGHT - k);
    let j = node.index % per_tile;
    let m = ((j + 1) << k) - 1;
    NodeLocation {
        tile: TileId {
            level: tile_level,
            index: node.index / per_tile,
        },
        position: (2 * m - m.count_ones() as u64 + k as u64) as usize,
        min_width: (j + 1) << k,
    }
}

/// The hashes of one tile, possibly partial (fewer than 256 base nodes).
#[derive(Clone, PartialEq, Eq)]
pub struct Tile {
    /// Which tile this is.
    pub id: TileId,
    width: u64,
    /// `hashes_in_tile(width)` hashes of 32 bytes, concatenated in completion order.
    data: Vec<u8>,
}

impl std::fmt::Debug for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tile")
            .field("id", &self.id)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

/// Why stored tile bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The byte length is not `32 * (2w - popcount(w))` for any width `1..=256`.
    #[error("tile {level}/{index} has {len} bytes, which is not a valid tile size")]
    BadLength {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
        /// Length found.
        len: usize,
    },
}

impl Tile {
    /// An empty tile (no base nodes yet).
    pub fn empty(id: TileId) -> Self {
        Self {
            id,
            width: 0,
            data: Vec::with_capacity(hashes_in_tile(TILE_WIDTH) as usize * HASH_LEN),
        }
    }

    /// Rebuilds a tile from its stored bytes, deriving the width from the length.
    pub fn from_bytes(id: TileId, data: Vec<u8>) -> Result<Self, TileError> {
        let bad = || TileError::BadLength {
            level: id.level,
            index: id.index,
            len: data.len(),
        };
        if !data.len().is_multiple_of(HASH_LEN) {
            return Err(bad());
        }
        let count = (data.len() / HASH_LEN) as u64;
        // hashes_in_tile is strictly increasing in width, so the width is unique if it exists.
        let width = (1..=TILE_WIDTH).find(|w| hashes_in_tile(*w) == count);
        match width {
            Some(width) => Ok(Self { id, width, data }),
            None => Err(bad()),
        }
    }

    /// Number of base nodes present (1..=256 once anything was pushed).
    pub fn width(&self) -> u64 {
        self.width
    }

    /// True once all 256 base nodes are present.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The stored bytes (what storage persists).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Hash at `position` in completion order.
    pub fn hash_at(&self, position: usize) -> Option<Hash> {
        let bytes = self
            .data
            .get(position * HASH_LEN..(position + 1) * HASH_LEN)?;
        Some(Hash(bytes.try_into().expect("slice is 32 bytes")))
    }

    /// The hash of a node located in this tile, if the tile is wide enough to contain it.
    pub fn node(&self, loc: &NodeLocation) -> Option<Hash> {
        debug_assert_eq!(loc.tile, self.id);
        if self.width < loc.min_width {
            return None;
        }
        self.hash_at(loc.position)
    }

    /// Appends the next base node and every parent it completes inside the tile. Returns the
    /// tile root (the level `8L+8` node) when this push filled the tile.
    ///
    /// Panics if the tile is already full (a caller bug, not a data condition).
    pub fn push(&mut self, base: Hash) -> Option<Hash> {
        assert!(!self.is_full(), "push onto a full tile");
        self.data.extend_from_slice(&base.0);
        let j = self.width;
        self.width += 1;
        let mut right = base;
        let mut k = 0u8;
        let mut idx = j;
        while idx & 1 == 1 {
            // The left sibling at sub-level k is node (k, idx - 1).
            let m = (idx << k) - 1; // last base node of the left sibling
            let pos = (2 * m - m.count_ones() as u64 + k as u64) as usize;
            let left = self.hash_at(pos).expect("left sibling is stored");
            right = node_hash(&left, &right);
            self.data.extend_from_slice(&right.0);
            k += 1;
            idx >>= 1;
        }
        debug_assert_eq!(
            self.data.len() as u64,
            hashes_in_tile(self.width) * HASH_LEN as u64
        );
        self.is_full().then_some(right)
    }

    /// Cuts the tile back to `width` base nodes (used when a stored tile is wider than the tree
    /// size being resumed from).
    pub fn truncate(&mut self, width: u64) {
        if width < self.width {
            self.width = width;
            self.data
                .truncate(hashes_in_tile(width) as usize * HASH_LEN);
        }
    }
}

/// The tiles on the right edge of a growing tree: the only ones that change when leaves are
/// appended. The writer keeps this in memory (at most one partial tile per tile level, so a few
/// tens of kilobytes at any size) and persists the tiles each batch touched.
#[derive(Debug, Clone, Default)]
pub struct RightEdge {
    size: u64,
    /// Rightmost tile per tile level; `None` where that level has no partial tile.
    tiles: Vec<Option<Tile>>,
    /// Tiles completed or changed since the last [`RightEdge::take_dirty`].
    dirty: std::collections::BTreeMap<TileId, Tile>,
    touched: std::collections::BTreeSet<u8>,
}

impl RightEdge {
    /// The right edge of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the right edge of a tree of `size` leaves from its stored partial tiles.
    /// `partial` must return, for each tile id in [`RightEdge::partial_tiles`], that tile.
    pub fn resume(size: u64, partial: impl IntoIterator<Item = Tile>) -> Result<Self, TileId> {
        let needed = Self::partial_tiles(size);
        let mut tiles: Vec<Option<Tile>> = vec![None; Self::levels(size)];
        let mut got: std::collections::BTreeMap<TileId, Tile> =
            partial.into_iter().map(|t| (t.id, t)).collect();
        for (id, width) in needed {
            let mut tile = got.remove(&id).ok_or(id)?;
            if tile.width() < width {
                return Err(id);
            }
            tile.truncate(width);
            tiles[id.level as usize] = Some(tile);
        }
        Ok(Self {
            size,
            tiles,
            ..Self::default()
        })
    }

    /// Number of tile levels in a tree of `size` leaves.
    fn levels(size: u64) -> usize {
        let mut levels = 0;
        while levels < 8 && (size >> (TILE_HEIGHT as u32 * levels as u32)) > 0 {
            levels += 1;
        }
        levels
    }

    /// The partial (non-full, non-empty) tiles of a tree of `size` leaves, with their widths.
    pub fn partial_tiles(size: u64) -> Vec<(TileId, u64)> {
        (0..Self::levels(size))
            .filter_map(|l| {
                let count = size >> (TILE_HEIGHT as u32 * l as u32);
                let width = count % TILE_WIDTH;
                (width != 0).then_some((
                    TileId {
                        level: l as u8,
                        index: count / TILE_WIDTH,
                    },
                    width,
                ))
            })
            .collect()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push_leaf(&mut self, leaf: Hash) {
        self.size += 1;
        let mut level = 0u8;
        let mut hash = leaf;
        loop {
            let count = self.size >> (TILE_HEIGHT as u32 * level as u32);
            let id = TileId {
                level,
                index: (count - 1) / TILE_WIDTH,
            };
            if self.tiles.len() <= level as usize {
                self.tiles.resize(level as usize + 1, None);
            }
            let slot = &mut self.tiles[level as usize];
            if slot.as_ref().is_none_or(|t| t.id != id) {
                if let Some(old) = slot.take() {
                    self.dirty.insert(old.id, old);
                }
                *slot = Some(Tile::empty(id));
            }
            self.touched.insert(level);
            let tile = slot.as_mut().expect("slot was just filled");
            match tile.push(hash) {
                None => break,
                Some(root) => {
                    hash = root;
                    level += 1;
                }
            }
        }
    }

    /// Root hash of the tree so far, computed from the edge tiles alone.
    pub fn root(&self) -> Hash {
        let plan = crate::tree::root_plan(self.size);
        let hashes = plan
            .resolve::<()>(|node| {
                let loc = locate(node);
                self.tiles
                    .get(loc.tile.level as usize)
                    .and_then(|t| t.as_ref())
                    .filter(|t| t.id == loc.tile)
                    .and_then(|t| t.node(&loc))
                    .ok_or(())
            })
            .expect("the right edge holds every node of the root plan");
        hashes[0]
    }

    /// Takes the tiles changed since the last call (full tiles completed and the current
    /// partial tiles), in the form storage persists.
    pub fn take_dirty(&mut self) -> Vec<Tile> {
        let mut out = std::mem::take(&mut self.dirty);
        for level in std::mem::take(&mut self.touched) {
            if let Some(Some(t)) = self.tiles.get(level as usize) {
                out.insert(t.id, t.clone());
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::{CompactRange, reference_root};

    #[test]
    fn positions_follow_completion_order() {
        // Build a full tile by pushing and compare every node position with the formula.
        let mut tile = Tile::empty(TileId { level: 0, index: 0 });
        let mut cr = CompactRange::new();
        let mut expected = Vec::new();
        for i in 0..TILE_WIDTH {
            let h = leaf_hash(&i.to_be_bytes());
            tile.push(h);
            cr.push_with(h, |id, hash| expected.push((id, *hash)));
        }
        assert_eq!(expected.len() as u64, hashes_in_tile(TILE_WIDTH));
        for (pos, (id, hash)) in expected.iter().enumerate() {
            let loc = locate(*id);
            if id.level < TILE_HEIGHT {
                assert_eq!(loc.position, pos, "node {id:?}");
                assert_eq!(tile.node(&loc), Some(*hash));
            }
            assert_eq!(tile.hash_at(pos), Some(*hash));
        }
    }

    #[test]
    fn from_bytes_accepts_only_valid_lengths() {
        let id = TileId { level: 0, index: 0 };
        assert!(Tile::from_bytes(id, vec![0; 32]).is_ok());
        assert!(Tile::from_bytes(id, vec![0; 64]).is_err()); // 2 hashes: no width gives 2
        assert_eq!(Tile::from_bytes(id, vec![0; 96]).unwrap().width(), 2);
        assert!(Tile::from_bytes(id, vec![0; 31]).is_err());
        assert!(Tile::from_bytes(id, vec![]).is_err());
        assert_eq!(
            Tile::from_bytes(id, vec![0; 511 * 32]).unwrap().width(),
            256
        );
    }

    #[test]
    fn right_edge_root_and_resume() {
        let leaves: Vec<Hash> = (0..70_000u64)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut edge = RightEdge::new();
        let mut stored = std::collections::BTreeMap::new();
        let checkpoints = [
            1usize, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ];
        let mut next = 0;
        for &c in &checkpoints {
            for h in &leaves[next..c] {
                edge.push_leaf(*h);
            }
            next = c;
            for t in edge.take_dirty() {
                stored.insert(t.id, t);
            }
            assert_eq!(edge.root(), reference_root(&leaves[..c]), "size {c}");
            let partial = RightEdge::partial_tiles(c as u64)
                .into_iter()
                .map(|(id, _)| stored[&id].clone());
            let resumed = RightEdge::resume(c as u64, partial).unwrap();
            assert_eq!(resumed.root(), edge.root());
        }
        // Every stored full tile agrees with the reference node hashes.
        let t = &stored[&TileId { level: 1, index: 0 }];
        assert!(t.is_full());
        assert_eq!(t.hash_at(510).unwrap(), reference_root(&leaves[..65_536]));
    }
}
