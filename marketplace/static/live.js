// Bookshop's live catalog: when catalog.toml changes, the open page shows the new books without
// a reload. The server tells of each new catalog version on /events (Server-Sent Events); the
// page then asks /api/recommendations and /api/categories and re-renders its books, heading and
// navigation in place, with the markup the server renders: the books shown stay in their places
// (asked back with ?keep=), a book the edit added to the category joins them, marked new, and the
// notice says what changed. Without JavaScript the page works as
// it is. Error pages that a new catalog may mend (an unknown category, Recommendations
// unavailable) reload instead, once per version. A save the server rejected shows why until the
// next good one.
"use strict";

(() => {
  const shelf = document.getElementById("shelf");
  const reloads = document.querySelector("[data-live=reload]") !== null;
  if ((!shelf && !reloads) || !("EventSource" in window)) {
    return;
  }

  // After a change, a replica may not serve the new version yet (each reloads on its own; on
  // Kubernetes a ConfigMap reaches the pods up to a minute or so apart): ask again, less and
  // less often, for about 75 s.
  const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000];
  const NOTICE_MS = 5000;
  // The reloads this tab made, and for how long each counts.
  const RELOADS_KEY = "bookshop-reloads";
  const RELOADS_MS = 10 * 60 * 1000;

  // The catalog version the page shows, or is being updated to, and what its reload changed.
  let wanted = document.body.dataset.version || "";
  let changes = [];
  let noticeTimer = 0;

  const since = wanted ? "?since=" + encodeURIComponent(wanted) : "";
  const events = new EventSource("/events" + since);
  events.addEventListener("catalog", (event) => {
    let version;
    try {
      const data = JSON.parse(event.data);
      version = data.version;
      changes = Array.isArray(data.changes) ? data.changes : [];
    } catch {
      return;
    }
    if (!version || version === wanted) {
      return;
    }
    if (!shelf) {
      reload(version);
      return;
    }
    wanted = version;
    update(version, 0);
  });

  events.addEventListener("rejected", (event) => {
    const notice = document.getElementById("catalog-rejected");
    let message;
    try {
      message = JSON.parse(event.data).message;
    } catch {
      return;
    }
    if (notice && typeof message === "string") {
      notice.querySelector("code").textContent = message;
      notice.hidden = !message;
    }
  });

  async function update(version, attempt) {
    if (version !== wanted) {
      return; // a newer version came meanwhile
    }
    const shown = [...document.querySelectorAll("#books .book")].map((book) => Number(book.dataset.id));
    const change = changes.find((c) => c.category === shelf.dataset.category);
    const added = (change && change.added_ids) || [];
    const keep = [...new Set([...shown, ...added])].slice(0, 50);
    const query = new URLSearchParams(location.search);
    query.set("category", shelf.dataset.category);
    query.set("max_results", Math.max(Number(shelf.dataset.maxResults), keep.length));
    query.set("lang", document.documentElement.lang);
    query.set("keep", keep.join(","));
    const lang = encodeURIComponent(document.documentElement.lang);
    let books;
    let categories;
    try {
      const [booksAnswer, categoriesAnswer] = await Promise.all([
        fetch("/api/recommendations?" + query),
        fetch("/api/categories?lang=" + lang),
      ]);
      if (booksAnswer.status === 400) {
        reload(version); // the category is gone: the server's page says so
        return;
      }
      const noBooks = booksAnswer.status === 404;
      if (!(booksAnswer.ok || noBooks) || !categoriesAnswer.ok) {
        throw new Error("status " + booksAnswer.status + ", " + categoriesAnswer.status);
      }
      books = noBooks ? { version, recommendations: [] } : await booksAnswer.json();
      categories = await categoriesAnswer.json();
    } catch {
      retry(version, attempt);
      return;
    }
    // A replica of Recommendations, or a Marketplace behind the same address, that does not
    // serve the new version yet: ask again shortly.
    const behind = (answer) => answer.version && answer.version !== version;
    if (behind(books) || behind(categories) || version !== wanted) {
      retry(version, attempt);
      return;
    }
    const current = categories.categories.find((c) => c.key === shelf.dataset.category);
    if (!current) {
      reload(version);
      return;
    }
    renderBooks(inPlace(books.recommendations, shown, added), current.books, new Set(added));
    renderNames(categories.categories, current);
    announce(categories.categories);
  }

  // Once per version at most, later each time: the page may come from a Marketplace that follows
  // another version than the one its stream comes from (two Marketplaces behind one balancer
  // while a ConfigMap reaches their pods apart), and the reloaded page would be the same.
  function reload(version) {
    const now = Date.now();
    let done;
    try {
      done = JSON.parse(sessionStorage.getItem(RELOADS_KEY) || "[]");
      done = (Array.isArray(done) ? done : []).filter((reloaded) => now - reloaded.at < RELOADS_MS);
      if (done.some((reloaded) => reloaded.version === version)) {
        return;
      }
      sessionStorage.setItem(RELOADS_KEY, JSON.stringify([...done, { version, at: now }]));
    } catch {
      return; // without storage, no way to know: no reload
    }
    setTimeout(() => location.reload(), Math.min(250 * 2 ** done.length, 30000));
  }

  function retry(version, attempt) {
    if (attempt < RETRY_MS.length) {
      setTimeout(() => update(version, attempt + 1), RETRY_MS[attempt]);
    }
  }

  // Each book shown before in its place (a removed one's taken by one drawn anew), then the rest.
  function inPlace(list, shown, added) {
    const byId = new Map(list.map((book) => [book.id, book]));
    const drawn = list.filter((book) => !shown.includes(book.id) && !added.includes(book.id));
    const placed = shown.map((id) => byId.get(id) || drawn.shift()).filter(Boolean);
    return [...placed, ...list.filter((book) => !placed.includes(book))];
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  // The books, as templates/shelf.stpl renders them.
  function renderBooks(list, total, added) {
    const container = document.getElementById("books");
    const more = container.querySelector(".more");
    const rendered = [];
    if (list.length === 0) {
      rendered.push(element("p", "notice", container.dataset.empty));
    } else {
      const books = element("ul", "books");
      for (const book of list) {
        const item = element("li", added.has(book.id) ? "book book-new" : "book");
        item.dataset.id = book.id;
        const cover = element("span", "cover cover-" + book.cover.colour, book.cover.initials);
        cover.setAttribute("aria-hidden", "true");
        item.append(cover, element("span", "book-title", book.title));
        if (book.author) {
          item.append(element("span", "book-author", book.author));
        }
        if (added.has(book.id)) {
          item.append(element("span", "book-badge", container.dataset.newBook));
        }
        books.append(item);
      }
      rendered.push(books);
      const moreExist = !total || list.length < total; // 0: not known
      if (more && list.length >= Number(shelf.dataset.maxResults) && moreExist) {
        rendered.push(more);
      }
    }
    container.replaceChildren(...rendered);
  }

  // The heading, the title and the navigation, as templates/layout/header.stpl renders them.
  function renderNames(list, current) {
    const heading = shelf.querySelector("h1");
    heading.textContent = current.name;
    const brand = document.title.split(" — ").pop();
    document.title = current.name + " — " + brand;
    const nav = document.querySelector("nav.categories");
    const template = nav.querySelector("a");
    const links = list.map((category) => {
      const target = new URL(template ? template.href : "/", location.href);
      target.searchParams.set("category", category.key);
      const link = document.createElement("a");
      link.href = target.pathname + target.search;
      link.textContent = category.name;
      if (category.key === current.key) {
        link.setAttribute("aria-current", "page");
      }
      return link;
    });
    nav.replaceChildren(...links);
  }

  // "1 book added to Poetry" in the page's language (the forms, by plural category, are the
  // server's), or "The catalog was updated." when the reload says no more.
  function announce(categories) {
    const notice = document.getElementById("live-notice");
    const rules = new Intl.PluralRules(document.documentElement.lang);
    const say = (forms, n, name) => {
      const byRule = new Map(forms.split("|").map((form) => form.split("=")));
      const form = byRule.get(rules.select(n)) || byRule.get("other") || "";
      return form.replace("{n}", n).replace("{c}", name);
    };
    const parts = [];
    for (const change of changes) {
      const category = categories.find((c) => c.key === change.category);
      const name = category ? category.name : change.category;
      for (const kind of ["added", "removed", "retitled"]) {
        if (change[kind] > 0) {
          parts.push(say(notice.dataset[kind], change[kind], name));
        }
      }
      if (change.renamed) {
        parts.push(notice.dataset.renamed.replace("{c}", name));
      }
    }
    const said = parts.slice(0, 3).join("; ") + (parts.length > 3 ? "; …" : "");
    notice.textContent = said || notice.dataset.text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice.textContent = "";
    }, NOTICE_MS);
  }
})();
