//! Hot reload through every way a file gets changed, while the server runs.

use std::{
    collections::HashSet,
    os::unix::fs::symlink,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use recommendations::watch::WatchMode;

use crate::helpers::*;

#[tokio::test]
async fn an_in_place_write_is_served_without_a_restart() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    app.edit_catalog(write_in_place, &["New"]).await;
}

#[tokio::test]
async fn a_save_by_rename_is_served_and_later_edits_too() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    app.edit_catalog(save_by_rename, &["Renamed 1"]).await;
    // The file now has a new inode: the next edits, of both kinds, must still be seen.
    app.edit_catalog(save_by_rename, &["Renamed 2"]).await;
    app.edit_catalog(write_in_place, &["In place after rename"])
        .await;
}

#[tokio::test]
async fn a_deleted_then_recreated_file_is_served_and_the_old_catalog_bridges_the_gap() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    std::fs::remove_file(&app.catalog).unwrap();
    app.assert_keeps_serving(
        &["Old"],
        Duration::from_millis(300),
        "while the file is missing the last good catalog keeps serving",
    )
    .await;
    std::fs::write(&app.catalog, catalog_with(&["Recreated"])).unwrap();
    app.wait_for_titles(&["Recreated"]).await;
}

/// Lays out a directory the way the kubelet does for a ConfigMap volume:
/// `catalog.toml -> ..data/catalog.toml`, `..data -> ..<timestamp>/`, with a catalog of these
/// mystery titles.
fn configmap_version(dir: &Path, version: &str, mystery: &[&str]) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("catalog.toml"), catalog_with(mystery)).unwrap();
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    // The atomic swap: rename the new symlink over `..data`.
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn a_kubernetes_configmap_update_is_served() {
    let dir = tempfile::tempdir().unwrap();
    configmap_version(dir.path(), "2026_11_29_10_00_00.1", &["Version 1"]);
    let catalog = dir.path().join("catalog.toml");
    symlink("..data/catalog.toml", &catalog).unwrap();
    let app = start(dir, catalog, |_| {}).await;
    app.wait_until_serving().await;
    assert_eq!(app.mystery_titles().await, ["Version 1"]);

    // The swap of `..data` alone must be noticed (the kubelet removes the old version only
    // afterwards, and that removal must not be what the watcher relies on).
    configmap_version(app.dir.path(), "2026_11_29_10_05_00.2", &["Version 2"]);
    app.wait_for_titles(&["Version 2"]).await;
    std::fs::remove_dir_all(app.dir.path().join("..2026_11_29_10_00_00.1")).unwrap();

    configmap_version(app.dir.path(), "2026_11_29_10_10_00.3", &["Version 3"]);
    app.wait_for_titles(&["Version 3"]).await;
    std::fs::remove_dir_all(app.dir.path().join("..2026_11_29_10_05_00.2")).unwrap();
    assert_eq!(app.mystery_titles().await, ["Version 3"]);
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_good_catalog_until_it_is_fixed() {
    let app = spawn_app(&catalog_with(&["Good"])).await;
    save_by_rename(&app.catalog, "[[mystery]]\nid = 1\ntitle = \"\"\n");
    // Give the watcher ample opportunity to (wrongly) swap; the good catalog must stay.
    app.assert_keeps_serving(
        &["Good"],
        Duration::from_millis(1500),
        "an invalid catalog replaced the good one",
    )
    .await;
    app.edit_catalog(write_in_place, &["Fixed"]).await;
}

#[tokio::test]
async fn polling_mode_picks_up_changes_without_filesystem_events() {
    let app = spawn_app_with(&catalog_with(&["Old"]), |s| {
        s.catalog.watch = WatchMode::Poll;
        s.catalog.poll_interval = Duration::from_millis(100);
    })
    .await;
    app.edit_catalog(write_in_place, &["Polled 1"]).await;
    app.edit_catalog(save_by_rename, &["Polled 2"]).await;
}

#[tokio::test]
async fn with_watching_off_the_file_is_not_reloaded() {
    let app = spawn_app_with(&catalog_with(&["Old"]), |s| {
        s.catalog.watch = WatchMode::Off;
    })
    .await;
    write_in_place(&app.catalog, &catalog_with(&["New"]));
    app.assert_keeps_serving(
        &["Old"],
        Duration::from_millis(800),
        "an edit was served with watching off",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_during_a_stream_of_calls_fail_no_call_and_never_mix_catalogs() {
    let a: Vec<String> = (0..8).map(|i| format!("A{i}")).collect();
    let b: Vec<String> = (0..8).map(|i| format!("B{i}")).collect();
    let app = spawn_app(&catalog_with(&a)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_b = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let mut client = app.client().await;
        let (stop, calls, seen_b) = (stop.clone(), calls.clone(), seen_b.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let books = recommend(&mut client, 1, MYSTERY, 50)
                    .await
                    .expect("a call failed during reloads");
                let prefixes: HashSet<char> = books
                    .iter()
                    .map(|r| r.title.chars().next().unwrap())
                    .collect();
                assert_eq!(books.len(), 8);
                assert_eq!(prefixes.len(), 1, "one call saw two catalogs: {prefixes:?}");
                if prefixes.contains(&'B') {
                    seen_b.store(true, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    for round in 0..10 {
        let titles = if round % 2 == 0 { &b } else { &a };
        let write = if round % 4 < 2 {
            save_by_rename
        } else {
            write_in_place
        };
        app.edit_catalog(write, titles).await;
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(
        calls.load(Ordering::Relaxed) > 100,
        "too few calls to mean anything"
    );
    assert!(
        seen_b.load(Ordering::Relaxed),
        "the callers never saw a reload"
    );
}
