//! Hot reload through every way a file gets changed, while the server runs.

use std::{
    collections::HashSet,
    os::unix::fs::symlink,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use recommendations::watch::WatchMode;

use crate::helpers::*;

#[tokio::test]
async fn an_in_place_write_is_served_without_a_restart() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    app.edit_catalog(write_in_place, &["New"]).await;
}

/// Puts a FIFO (a named pipe, no writer) at `path`, as `mkfifo x && mv x catalog.toml` does.
pub fn fifo_over(path: &Path) {
    let fifo = path.with_extension("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo: {made}");
    std::fs::rename(&fifo, path).unwrap();
}

#[tokio::test]
async fn a_fifo_at_the_catalog_path_is_refused_and_the_next_good_save_is_served() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    let failures = "bookshop_catalog_reloads_total{result=\"failure\"}";
    fifo_over(&app.catalog);
    let refused = eventually(SOON, async || app.metric(failures).await == 1.0).await;
    assert!(refused, "the FIFO was not refused: {}", app.metrics().await);
    app.assert_keeps_serving(&["Old"], Duration::from_millis(200), "the last good catalog stays")
        .await;
    // Opening a FIFO without a writer would block: the reload must not be stuck in it.
    app.edit_catalog(save_by_rename, &["After the FIFO"]).await;
}

#[tokio::test]
async fn a_save_by_rename_is_served_and_later_edits_too() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    app.edit_catalog(save_by_rename, &["Renamed 1"]).await;
    // The file now has a new inode: the next edits, of both kinds, must still be seen.
    app.edit_catalog(save_by_rename, &["Renamed 2"]).await;
    app.edit_catalog(write_in_place, &["In place after rename"]).await;
}

#[tokio::test]
async fn a_save_by_rename_is_served_after_the_debounce_without_the_settle_wait() {
    // A renamed-in file is whole the moment it appears. The old file's own watch reports its
    // end (attributes, removal) right after the rename; if those counted as an in-place write,
    // every rename save would wait the settle interval. A long interval makes that obvious.
    let settle = Duration::from_secs(2);
    let app = spawn_app_with(&catalog_with(&["Old"]), |s| s.catalog.settle = settle).await;
    let debounce = recommendations::settings::CatalogSettings::default().debounce;
    for round in 1..=3 {
        let title = format!("Renamed {round}");
        let saved = Instant::now();
        save_by_rename(&app.catalog, &catalog_with(&[&title]));
        app.wait_for_titles(&[&title]).await;
        let took = saved.elapsed();
        assert!(
            took < settle,
            "save {round} served after {took:?}: it waited the settle interval ({settle:?}) \
             instead of the debounce ({debounce:?})"
        );
    }
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
                let prefixes: HashSet<char> =
                    books.iter().map(|r| r.title.chars().next().unwrap()).collect();
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
        let write = if round % 4 < 2 { save_by_rename } else { write_in_place };
        app.edit_catalog(write, titles).await;
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(calls.load(Ordering::Relaxed) > 100, "too few calls to mean anything");
    assert!(seen_b.load(Ordering::Relaxed), "the callers never saw a reload");
}

/// Writes `catalog_with(mystery)` into `path` in place, one book at a time, holding the file
/// open and pausing between books (`pauses` gives each pause): a prefix cut at a book boundary
/// is itself a valid, smaller catalog.
fn write_slowly(path: &Path, mystery: &[String], pauses: &mut impl Iterator<Item = Duration>) {
    use std::io::Write;
    let text = catalog_with(mystery);
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    for (i, book) in text.split("\n[[").enumerate() {
        if i > 0 {
            std::thread::sleep(pauses.next().unwrap());
            file.write_all(b"\n[[").unwrap();
        }
        file.write_all(book.as_bytes()).unwrap();
        file.flush().unwrap();
    }
}

#[tokio::test]
async fn a_writer_that_pauses_at_book_boundaries_never_has_a_partial_catalog_served() {
    let version = |v: usize| -> Vec<String> { (1..=5).map(|b| format!("V{v} book {b}")).collect() };
    // Pauses well below the settle interval, so a loaded machine that oversleeps a pause does
    // not turn it into a legitimately settled prefix.
    let app =
        spawn_app_with(&catalog_with(&version(0)), |s| s.catalog.settle = Duration::from_secs(2))
            .await;
    let versions: Vec<Vec<String>> = (0..=4).map(version).collect();
    let wholes: Vec<Vec<String>> = versions.iter().map(|v| sorted(v)).collect();
    // Every answer while the writer works must be one of the whole catalogs.
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (addr, done, wholes) = (app.addr, done.clone(), wholes.clone());
        tokio::spawn(async move {
            let mut client = connect(addr).await;
            let mut answers = 0;
            while !done.load(Ordering::Relaxed) {
                let served = recommend(&mut client, 1, MYSTERY, 50).await;
                let served = served.map(|books| sorted(&titles_of(books)));
                assert!(
                    served.as_ref().is_ok_and(|titles| wholes.contains(titles)),
                    "a partial catalog was served: {served:?}"
                );
                answers += 1;
            }
            answers
        })
    };
    // 20 pauses in all, from 150 to 400 ms.
    let mut pauses = (0..20u64).map(|i| Duration::from_millis(150 + (i * 97) % 251));
    for version in &versions[1..] {
        let path = app.catalog.clone();
        let mystery = version.clone();
        let written = pauses.by_ref().take(5).collect::<Vec<_>>();
        tokio::task::spawn_blocking(move || {
            write_slowly(&path, &mystery, &mut written.into_iter())
        })
        .await
        .unwrap();
        app.wait_for_titles(version).await;
    }
    done.store(true, Ordering::Relaxed);
    let answers = checker.await.unwrap();
    assert!(answers > 100, "only {answers} answers were checked");
}

/// Renames into the catalog's place a link to a file that does not exist yet, in a directory
/// that is not watched, and waits until reading it failed: the directory and the file the link
/// will find once written.
async fn dangling_link_in_place(app: &TestApp) -> (tempfile::TempDir, std::path::PathBuf) {
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("real.toml");
    let link = app.dir.path().join("catalog.toml.new");
    symlink(&target, &link).unwrap();
    std::fs::rename(&link, &app.catalog).unwrap();
    let failed =
        eventually(SOON, async || app.metric("bookshop_catalog_read_errors_total").await >= 1.0)
            .await;
    assert!(failed, "the dangling link was not read");
    (elsewhere, target)
}

#[tokio::test]
async fn a_read_that_fails_for_a_passing_reason_is_tried_again_until_it_succeeds() {
    let app = spawn_app(&catalog_with(&["Old"])).await;
    // The catalog becomes a link to a file that does not exist yet, in a directory that is not
    // watched: when the file appears, no event says so, and only trying again finds it.
    let (_elsewhere, target) = dangling_link_in_place(&app).await;
    app.assert_keeps_serving(&["Old"], Duration::from_millis(200), "the last good catalog stays")
        .await;
    std::fs::write(&target, catalog_with(&["Found later"])).unwrap();
    app.wait_for_titles(&["Found later"]).await;
}

#[tokio::test]
async fn a_file_found_by_a_retried_read_settles_before_it_is_served() {
    use std::io::Write;
    // A rename put in place a link to a file that does not exist yet: the rename said "whole",
    // but nothing could be read. What the retries find later is being written by someone the
    // watcher does not see (an unwatched directory), so it must settle like an in-place write.
    let settle = Duration::from_secs(2);
    let app = spawn_app_with(&catalog_with(&["Old"]), |s| s.catalog.settle = settle).await;
    let (_elsewhere, target) = dangling_link_in_place(&app).await;

    // The first book of two, written and held open: a valid, smaller catalog on its own.
    let whole = catalog_with(&["Half 1", "Half 2"]);
    let prefix = catalog_with(&["Half 1"]);
    assert!(whole.starts_with(&prefix));
    let mut file = std::fs::File::create(&target).unwrap();
    file.write_all(prefix.as_bytes()).unwrap();
    file.flush().unwrap();
    // The retries (after 100, 200, 400 ms, ...) find the prefix within this period; it must
    // not be served before the settle interval, which has not passed by its end.
    app.assert_keeps_serving(
        &["Old"],
        settle * 3 / 5,
        "a prefix found by a retried read was served without settling",
    )
    .await;
    file.write_all(&whole.as_bytes()[prefix.len()..]).unwrap();
    drop(file);
    app.wait_for_titles(&["Half 1", "Half 2"]).await;
}
