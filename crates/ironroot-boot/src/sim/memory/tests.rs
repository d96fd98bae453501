//! Unit tests of `memory` (kept apart from the code they test).

use super::*;

fn mem(erased: u8) -> SimMemory {
    SimMemory::new(
        SimGeometry {
            erase_size: 64,
            write_size: 8,
            erased,
            capacity: 256,
        },
        Power::new(),
    )
}

#[test]
fn nor_rules_are_enforced_and_counted() {
    let mut m = mem(0xff);
    assert!(matches!(
        m.write_bytes(4, &[0; 8]),
        Err(SimError::NotAligned { .. })
    ));
    assert!(matches!(
        m.write_bytes(0, &[0; 4]),
        Err(SimError::NotAligned { .. })
    ));
    assert!(matches!(
        m.erase_sectors(0, 32),
        Err(SimError::NotAligned { .. })
    ));
    assert!(matches!(
        m.erase_sectors(192, 320),
        Err(SimError::OutOfBounds { .. })
    ));
    m.write_bytes(8, &[1; 8]).unwrap();
    assert!(matches!(
        m.write_bytes(8, &[1; 8]),
        Err(SimError::NotErased { offset: 8 })
    ));
    assert_eq!(m.violations(), 5);
    m.erase_sectors(0, 64).unwrap();
    m.write_bytes(8, &[2; 8]).unwrap();
    assert_eq!(m.stats().writes, 2);
    assert_eq!(m.stats().erases, 1);
    assert_eq!(m.wear()[0], 1);
}

#[test]
fn erased_value_zero_is_respected() {
    let mut m = mem(0x00);
    assert!(m.as_bytes().iter().all(|&b| b == 0));
    m.write_bytes(0, &[0xff; 8]).unwrap();
    assert!(matches!(
        m.write_bytes(0, &[0xff; 8]),
        Err(SimError::NotErased { .. })
    ));
    m.erase_sectors(0, 64).unwrap();
    assert_eq!(m.as_bytes()[0], 0);
}

#[test]
fn clean_cut_leaves_the_operation_undone_and_later_ops_fail() {
    let mut m = mem(0xff);
    m.power().arm(2, CutMode::Before);
    m.write_bytes(0, &[1; 8]).unwrap();
    assert!(m.write_bytes(8, &[2; 8]).unwrap_err().is_power_loss());
    assert!(m.erase_sectors(0, 64).unwrap_err().is_power_loss());
    assert_eq!(
        &m.as_bytes()[..16],
        &[
            1, 1, 1, 1, 1, 1, 1, 1, 255, 255, 255, 255, 255, 255, 255, 255
        ]
    );
    assert_eq!(m.violations(), 0);
}

#[test]
fn multi_sector_erase_is_cut_between_sectors() {
    let mut m = mem(0xff);
    m.program_raw(0, &[0u8; 256]);
    m.power().arm(3, CutMode::Before);
    assert!(m.erase_sectors(0, 256).is_err());
    assert!(m.as_bytes()[..128].iter().all(|&b| b == 0xff));
    assert!(m.as_bytes()[128..].iter().all(|&b| b == 0));
}

#[test]
fn torn_write_only_moves_bits_away_from_erased_and_spares_other_bytes() {
    for seed in 0..50 {
        for erased in [0xffu8, 0x00] {
            let mut m = mem(erased);
            let data = [0x5au8; 32];
            m.power().arm(1, CutMode::Torn { seed });
            assert!(m.write_bytes(64, &data).is_err());
            for (i, &b) in m.as_bytes().iter().enumerate() {
                if (64..96).contains(&i) {
                    // Each bit is either still erased or has its programmed value.
                    let target = data[i - 64];
                    let moved = if erased == 0xff { !b } else { b };
                    let wanted = if erased == 0xff { !target } else { target };
                    assert_eq!(moved & !wanted, 0, "seed {seed} byte {i}");
                } else {
                    assert_eq!(b, erased, "seed {seed} byte {i} outside the write");
                }
            }
        }
    }
}

#[test]
fn torn_erase_damages_only_its_sector() {
    let mut m = mem(0xff);
    m.program_raw(0, &[0u8; 256]);
    m.power().arm(2, CutMode::Torn { seed: 7 });
    assert!(m.erase_sectors(0, 192).is_err());
    assert!(m.as_bytes()[..64].iter().all(|&b| b == 0xff));
    assert!(m.as_bytes()[64..128].iter().any(|&b| b != 0));
    assert!(m.as_bytes()[128..].iter().all(|&b| b == 0));
}

#[test]
fn sim_flash_is_a_nor_flash() {
    let mut f: SimFlash<64, 8> = SimFlash::new(256, 0xff, Power::new());
    assert_eq!(<SimFlash<64, 8> as NorFlash>::ERASE_SIZE, 64);
    NorFlash::write(&mut f, 0, &[3; 8]).unwrap();
    let mut b = [0u8; 2];
    ReadNorFlash::read(&mut f, 7, &mut b).unwrap();
    assert_eq!(b, [3, 0xff]);
    assert_eq!(
        NorFlash::write(&mut f, 0, &[3; 8]).unwrap_err().kind(),
        NorFlashErrorKind::Other
    );
}

#[test]
fn file_flash_round_trips() {
    let dir = std::env::temp_dir().join(format!("ironroot-boot-ff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flash.bin");
    let _ = std::fs::remove_file(&path);
    let geo = SimGeometry {
        erase_size: 64,
        write_size: 8,
        erased: 0xff,
        capacity: 256,
    };
    let mut f = FileFlash::create(&path, geo).unwrap();
    f.memory_mut().write_bytes(0, &[9; 8]).unwrap();
    f.persist().unwrap();
    let g = FileFlash::open(&path, geo, Power::new()).unwrap();
    assert_eq!(g.memory().as_bytes()[..8], [9; 8]);
    let bad = SimGeometry {
        capacity: 512,
        ..geo
    };
    assert!(FileFlash::open(&path, bad, Power::new()).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
