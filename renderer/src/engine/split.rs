//! One PDF of a group render ([`super::group`]) cut into one PDF per document.
//!
//! Where each document starts is never guessed: the group page puts a link to
//! `{marker}{index}` at the top of every document, and Chromium writes each link as an
//! annotation on the page where it lies. The pages from one document's marker to the next
//! are that document's. The markers carry a nonce of the render, so a document cannot fake
//! one, and a missing, repeated or out-of-order marker fails the split (the group is then
//! rendered one document at a time).
//!
//! Each document's PDF gets only the objects its own pages reach: a reference to another
//! document's page (a link's destination) is dropped rather than followed, and its fonts are
//! subset again to its own glyphs ([`super::glyphs`]: Chromium subsets each font once for the
//! whole print), so nothing of one document ends up in another's file. The group's tags
//! (structure tree, parent tree, element ids) and outline span every document: each document
//! gets them cut down to what lies on its own pages, which is what it has alone
//! (renderer/tests/batch.rs compares them). A structure that cannot be cut (deeper than
//! [`MAX_DEPTH`], or written in a form Chromium does not use) leaves that document untagged
//! rather than wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use lopdf::{dictionary, Document, Object, ObjectId};

/// Why a group PDF could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the group PDF could not be read: {0}")]
    Unreadable(String),
    #[error("a document's fonts could not be cut to its own glyphs: {0}")]
    Glyphs(String),
    #[error("document {0}'s marker is missing")]
    Missing(usize),
    #[error("document {0}'s marker appears twice")]
    Repeated(usize),
    #[error("document {0} does not start after the one before it")]
    OutOfOrder(usize),
}

/// One document's PDF, parsed (the post-processing stage writes it).
pub struct Part {
    pub pdf: Document,
    pub pages: usize,
}

/// Splits `pdf` into `count` PDFs, one per document, by the link markers `{marker}{index}`.
pub fn split(pdf: &[u8], marker: &str, count: usize) -> Result<Vec<Part>, SplitError> {
    let doc = Document::load_mem(pdf).map_err(|e| SplitError::Unreadable(e.to_string()))?;
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    let (starts, markers) = find_markers(&doc, &pages, marker, count)?;
    let all_pages: HashSet<ObjectId> = pages.iter().copied().collect();
    let spans = tags::Spans::of(&doc, &pages);
    let group = Group { src: &doc, all_pages: &all_pages, skip: &markers, spans: &spans };
    let mut fonts = super::glyphs::Fonts::default();
    (0..count)
        .map(|i| {
            let end = starts.get(i + 1).copied().unwrap_or(pages.len());
            let own = &pages[starts[i]..end];
            let mut pdf = extract(&group, own, (starts[i], end - 1))?;
            super::glyphs::keep_own(&mut pdf, &mut fonts).map_err(SplitError::Glyphs)?;
            // Only now: `fonts` knows the group's fonts by their numbers in the group PDF.
            pdf.renumber_objects();
            Ok(Part { pdf, pages: own.len() })
        })
        .collect()
}

/// The first page of each document, and the marker annotations (to leave out).
fn find_markers(
    doc: &Document,
    pages: &[ObjectId],
    marker: &str,
    count: usize,
) -> Result<(Vec<usize>, HashSet<ObjectId>), SplitError> {
    let mut starts: Vec<Option<usize>> = vec![None; count];
    let mut markers = HashSet::new();
    for (page_index, page) in pages.iter().enumerate() {
        for annot in annotations(doc, *page) {
            let Some(index) = link_uri(doc, annot)
                .and_then(|uri| uri.strip_prefix(marker).map(str::to_owned))
                .and_then(|rest| rest.parse::<usize>().ok())
            else {
                continue;
            };
            // A link to our marker prefix with another index is no document of ours: refuse.
            let slot = starts.get_mut(index).ok_or(SplitError::Missing(index))?;
            if slot.is_some() {
                return Err(SplitError::Repeated(index));
            }
            *slot = Some(page_index);
            markers.insert(annot);
        }
    }
    let mut out = Vec::with_capacity(count);
    for (i, start) in starts.into_iter().enumerate() {
        let start = start.ok_or(SplitError::Missing(i))?;
        let first_ok = i > 0 || start == 0;
        if !first_ok || out.last().is_some_and(|prev| start <= *prev) {
            return Err(SplitError::OutOfOrder(i));
        }
        out.push(start);
    }
    Ok((out, markers))
}

/// The page's annotations, as object ids (Chromium writes each as an indirect object).
fn annotations(doc: &Document, page: ObjectId) -> Vec<ObjectId> {
    let Ok(dict) = doc.get_dictionary(page) else { return Vec::new() };
    let annots = match dict.get(b"Annots") {
        Ok(Object::Reference(id)) => doc.get_object(*id).ok(),
        Ok(other) => Some(other),
        Err(_) => None,
    };
    match annots {
        Some(Object::Array(items)) => items.iter().filter_map(|o| o.as_reference().ok()).collect(),
        _ => Vec::new(),
    }
}

/// The URI of a link annotation's URI action.
fn link_uri(doc: &Document, annot: ObjectId) -> Option<String> {
    let dict = doc.get_dictionary(annot).ok()?;
    if dict.get(b"Subtype").ok()?.as_name().ok()? != b"Link" {
        return None;
    }
    let action = match dict.get(b"A").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let uri = action.get(b"URI").ok()?.as_str().ok()?;
    String::from_utf8(uri.to_vec()).ok()
}

/// The group PDF and what is known of it once for all its documents.
struct Group<'a> {
    src: &'a Document,
    all_pages: &'a HashSet<ObjectId>,
    /// The markers' annotations.
    skip: &'a HashSet<ObjectId>,
    spans: &'a tags::Spans,
}

/// A PDF of `pages` (the group's `range` of page indexes) and everything they reach, without
/// the markers and without any other page; with the group's tags and outline cut down to what
/// lies on `pages`. Its objects keep their numbers in the group PDF.
fn extract(
    group: &Group<'_>,
    pages: &[ObjectId],
    range: (usize, usize),
) -> Result<Document, SplitError> {
    let Group { src, all_pages, skip, spans } = *group;
    let own: HashSet<ObjectId> = pages.iter().copied().collect();
    let annots: HashSet<ObjectId> =
        pages.iter().flat_map(|p| annotations(src, *p)).filter(|a| !skip.contains(a)).collect();
    let mut overrides: BTreeMap<ObjectId, Object> = BTreeMap::new();
    let mut catalog = dictionary! { "Type" => "Catalog" };
    let mut roots: Vec<ObjectId> = pages.to_vec();
    if let Ok(source) = src.catalog() {
        let tagged = reference(source, b"StructTreeRoot").and_then(|root| {
            let cut = tags::Cut { own: &own, annots: &annots, spans, range };
            tags::prune(src, root, &cut, &mut overrides).then_some(root)
        });
        if let Some(root) = tagged {
            catalog.set("StructTreeRoot", root);
            roots.push(root);
            for key in [&b"MarkInfo"[..], b"Lang"] {
                if let Ok(value) = source.get(key) {
                    catalog.set(key.to_vec(), value.clone());
                }
            }
        }
        let outlines = reference(source, b"Outlines")
            .filter(|o| outline::prune(src, *o, &own, &mut overrides));
        if let Some(outlines) = outlines {
            catalog.set("Outlines", outlines);
            roots.push(outlines);
        }
    }
    let untagged = !catalog.has(b"StructTreeRoot");
    let mut objects: BTreeMap<ObjectId, Object> = BTreeMap::new();
    let mut seen: BTreeSet<ObjectId> = roots.iter().copied().collect();
    let mut todo: Vec<ObjectId> = roots;
    // Whether `id` may be followed from here: not a marker, not another document's page.
    let allowed =
        |id: &ObjectId| !skip.contains(id) && (!all_pages.contains(id) || own.contains(id));
    while let Some(id) = todo.pop() {
        let mut object = match overrides.get(&id) {
            Some(o) => o.clone(),
            None => match src.get_object(id) {
                Ok(o) => o.clone(),
                Err(_) => continue,
            },
        };
        if let Object::Dictionary(d) = &mut object {
            if own.contains(&id) {
                // The group's page tree: replaced below.
                d.remove(b"Parent");
                if let Ok(Object::Array(annots)) = d.get_mut(b"Annots") {
                    annots.retain(|a| a.as_reference().map_or(true, |r| !skip.contains(&r)));
                }
            }
            if untagged {
                d.remove(b"StructParents");
                d.remove(b"StructParent");
            }
        }
        prune(&mut object, &allowed);
        let mut refs = Vec::new();
        collect_refs(&object, &mut refs);
        for r in refs {
            if seen.insert(r) {
                todo.push(r);
            }
        }
        objects.insert(id, object);
    }
    let mut out = Document::with_version(src.version.clone());
    out.objects = objects;
    out.max_id = src.max_id;
    let pages_id = out.new_object_id();
    for page in pages {
        if let Some(Object::Dictionary(d)) = out.objects.get_mut(page) {
            d.set("Parent", Object::Reference(pages_id));
        }
    }
    let kids: Vec<Object> = pages.iter().map(|p| Object::Reference(*p)).collect();
    let count = i64::try_from(pages.len()).unwrap_or(i64::MAX);
    out.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    catalog.set("Pages", pages_id);
    let catalog_id = out.add_object(catalog);
    out.trailer.set("Root", catalog_id);
    Ok(out)
}

fn reference(dict: &lopdf::Dictionary, key: &[u8]) -> Option<ObjectId> {
    dict.get(key).ok()?.as_reference().ok()
}

/// Replaces, in place, references `allowed` refuses by null (which PDF reads as absent).
fn prune(object: &mut Object, allowed: &impl Fn(&ObjectId) -> bool) {
    match object {
        Object::Reference(id) if !allowed(id) => *object = Object::Null,
        Object::Array(items) => items.iter_mut().for_each(|item| prune(item, allowed)),
        Object::Dictionary(d) => d.iter_mut().for_each(|(_, v)| prune(v, allowed)),
        Object::Stream(s) => s.dict.iter_mut().for_each(|(_, v)| prune(v, allowed)),
        _ => {}
    }
}

fn collect_refs(object: &Object, out: &mut Vec<ObjectId>) {
    match object {
        Object::Reference(id) => out.push(*id),
        Object::Array(items) => items.iter().for_each(|o| collect_refs(o, out)),
        Object::Dictionary(d) => d.iter().for_each(|(_, v)| collect_refs(v, out)),
        Object::Stream(s) => s.dict.iter().for_each(|(_, v)| collect_refs(v, out)),
        _ => {}
    }
}

/// Deeper than this, a structure or outline tree is not carried over (a document could nest
/// without end).
const MAX_DEPTH: usize = 256;

/// The structure tree (tags) cut down to the elements with content on the document's pages.
mod tags {
    use super::*;

    /// The first and last page (indexes) each structure element has content on, found once
    /// for the whole group: each document's cut then skips the others' subtrees at once instead
    /// of walking them (which made splitting quadratic in the group's size).
    pub(super) struct Spans {
        spans: HashMap<ObjectId, (usize, usize)>,
        too_deep: bool,
    }

    impl Spans {
        pub(super) fn of(src: &Document, pages: &[ObjectId]) -> Self {
            let index: HashMap<ObjectId, usize> =
                pages.iter().enumerate().map(|(i, p)| (*p, i)).collect();
            let mut spans = Self { spans: HashMap::new(), too_deep: false };
            let root = src.catalog().ok().and_then(|c| reference(c, b"StructTreeRoot"));
            if let Some(root) = root.and_then(|r| src.get_dictionary(r).ok()) {
                spans.of_kids(src, root, None, &index, 0);
            }
            spans
        }

        fn of_kids(
            &mut self,
            src: &Document,
            dict: &lopdf::Dictionary,
            page: Option<ObjectId>,
            index: &HashMap<ObjectId, usize>,
            depth: usize,
        ) -> Option<(usize, usize)> {
            let page = reference(dict, b"Pg").or(page);
            let at = |p: Option<ObjectId>| p.and_then(|p| index.get(&p)).map(|i| (*i, *i));
            let mut span: Option<(usize, usize)> = None;
            for kid in kid_list(dict) {
                let s = match &kid {
                    Object::Integer(_) => at(page),
                    Object::Dictionary(d) => at(reference(d, b"Pg").or(page)),
                    Object::Reference(id) => match src.get_dictionary(*id) {
                        Ok(d) if d.has(b"S") => {
                            if depth > MAX_DEPTH {
                                self.too_deep = true;
                                None
                            } else if let Some(s) = self.spans.get(id) {
                                Some(*s)
                            } else {
                                let s = self.of_kids(src, d, page, index, depth + 1);
                                if let Some(s) = s {
                                    self.spans.insert(*id, s);
                                }
                                s
                            }
                        }
                        Ok(d) => at(reference(d, b"Pg").or(page)),
                        Err(_) => None,
                    },
                    _ => None,
                };
                span = match (span, s) {
                    (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                    (a, b) => a.or(b),
                };
            }
            span
        }
    }

    fn kid_list(dict: &lopdf::Dictionary) -> Vec<Object> {
        match dict.get(b"K") {
            Ok(Object::Array(items)) => items.clone(),
            Ok(other) => vec![other.clone()],
            Err(_) => Vec::new(),
        }
    }

    /// One document's part of the group: its pages, its annotations, their indexes.
    pub(super) struct Cut<'a> {
        pub(super) own: &'a HashSet<ObjectId>,
        pub(super) annots: &'a HashSet<ObjectId>,
        pub(super) spans: &'a Spans,
        pub(super) range: (usize, usize),
    }

    struct Pruner<'a> {
        src: &'a Document,
        cut: &'a Cut<'a>,
        out: BTreeMap<ObjectId, Object>,
        kept: HashSet<ObjectId>,
    }

    /// Writes into `overrides` the structure tree of the document's pages under `root`; false
    /// when there is nothing of it there, or it cannot be cut (then the document is untagged).
    pub(super) fn prune(
        src: &Document,
        root: ObjectId,
        cut: &Cut<'_>,
        overrides: &mut BTreeMap<ObjectId, Object>,
    ) -> bool {
        if cut.spans.too_deep {
            return false;
        }
        let (own, annots) = (cut.own, cut.annots);
        let Ok(root_dict) = src.get_dictionary(root) else { return false };
        let mut p = Pruner { src, cut, out: BTreeMap::new(), kept: HashSet::new() };
        let kids = p.kids(root_dict, None, 0);
        if kids.is_empty() {
            return false;
        }
        // The parent tree: the entries of this document's pages and annotations.
        let mut keys: HashSet<i64> = HashSet::new();
        for id in own.iter().chain(annots) {
            if let Ok(d) = src.get_dictionary(*id) {
                for key in [&b"StructParents"[..], b"StructParent"] {
                    if let Ok(n) = d.get(key).and_then(Object::as_i64) {
                        keys.insert(n);
                    }
                }
            }
        }
        let Some(parent_tree) = root_dict.get(b"ParentTree").ok().and_then(|o| match o {
            Object::Reference(id) => src.get_dictionary(*id).ok(),
            Object::Dictionary(d) => Some(d),
            _ => None,
        }) else {
            return false;
        };
        // Chromium writes one flat /Nums array; anything else is not cut.
        let Ok(Object::Array(nums)) = parent_tree.get(b"Nums") else { return false };
        let mut kept_nums = Vec::new();
        for pair in nums.chunks(2) {
            let [Object::Integer(key), value] = pair else { return false };
            if !keys.contains(key) {
                continue;
            }
            let value = match value {
                Object::Reference(id) => match src.get_object(*id) {
                    Ok(Object::Array(items)) => {
                        let items = items.iter().map(|i| p.only_kept(i)).collect();
                        p.out.insert(*id, Object::Array(items));
                        value.clone()
                    }
                    Ok(_) => p.only_kept(value),
                    Err(_) => continue,
                },
                Object::Array(items) => {
                    Object::Array(items.iter().map(|i| p.only_kept(i)).collect())
                }
                other => other.clone(),
            };
            kept_nums.push(Object::Integer(*key));
            kept_nums.push(value);
        }
        let mut new_root = root_dict.clone();
        new_root.set("K", kids_object(kids));
        new_root.set("ParentTree", dictionary! { "Nums" => kept_nums });
        // Element ids (table headers name their cells' headers by them): those kept.
        match p.id_tree(root_dict) {
            Some(names) => new_root.set("IDTree", dictionary! { "Names" => names }),
            None => {
                new_root.remove(b"IDTree");
            }
        }
        p.out.insert(root, Object::Dictionary(new_root));
        overrides.extend(p.out);
        true
    }

    fn kids_object(mut kids: Vec<Object>) -> Object {
        if kids.len() == 1 {
            kids.remove(0)
        } else {
            Object::Array(kids)
        }
    }

    impl Pruner<'_> {
        /// The `/Names` of the ID tree for the kept elements (Chromium writes one flat array).
        fn id_tree(&self, root: &lopdf::Dictionary) -> Option<Vec<Object>> {
            let tree = match root.get(b"IDTree").ok()? {
                Object::Reference(id) => self.src.get_dictionary(*id).ok()?,
                Object::Dictionary(d) => d,
                _ => return None,
            };
            let names = tree.get(b"Names").ok()?.as_array().ok()?;
            let kept: Vec<Object> = names
                .chunks(2)
                .filter(|pair| matches!(pair, [_, Object::Reference(id)] if self.kept.contains(id)))
                .flatten()
                .cloned()
                .collect();
            (!kept.is_empty()).then_some(kept)
        }

        /// `value` if it is a kept element (or no element at all), else null.
        fn only_kept(&self, value: &Object) -> Object {
            match value {
                Object::Reference(id) if !self.kept.contains(id) => Object::Null,
                other => other.clone(),
            }
        }

        /// The kids of `dict` that have content on the document's pages.
        fn kids(
            &mut self,
            dict: &lopdf::Dictionary,
            page: Option<ObjectId>,
            depth: usize,
        ) -> Vec<Object> {
            let page = reference(dict, b"Pg").or(page);
            kid_list(dict).into_iter().filter(|kid| self.keep(kid, page, depth)).collect()
        }

        fn keep(&mut self, kid: &Object, page: Option<ObjectId>, depth: usize) -> bool {
            match kid {
                // A marked-content id on the element's page.
                Object::Integer(_) => page.is_some_and(|p| self.cut.own.contains(&p)),
                Object::Dictionary(d) => self.leaf(d, page),
                Object::Reference(id) => {
                    let Ok(d) = self.src.get_dictionary(*id) else { return false };
                    if d.has(b"S") {
                        self.element(*id, d, page, depth + 1)
                    } else {
                        self.leaf(d, page)
                    }
                }
                _ => false,
            }
        }

        /// A marked-content reference or an object reference (an annotation).
        fn leaf(&self, d: &lopdf::Dictionary, page: Option<ObjectId>) -> bool {
            let page = reference(d, b"Pg").or(page);
            match d.get(b"Type").and_then(Object::as_name) {
                Ok(b"OBJR") => reference(d, b"Obj").is_some_and(|o| self.cut.annots.contains(&o)),
                _ => page.is_some_and(|p| self.cut.own.contains(&p)),
            }
        }

        fn element(
            &mut self,
            id: ObjectId,
            d: &lopdf::Dictionary,
            page: Option<ObjectId>,
            depth: usize,
        ) -> bool {
            // No content on this document's pages (or none at all): not walked.
            let (first, last) = self.cut.range;
            match self.cut.spans.spans.get(&id) {
                Some((lo, hi)) if *hi >= first && *lo <= last => {}
                _ => return false,
            }
            if depth > MAX_DEPTH {
                return false;
            }
            if self.kept.contains(&id) {
                return true;
            }
            let kids = self.kids(d, page, depth);
            if kids.is_empty() {
                return false;
            }
            let mut d = d.clone();
            d.set("K", kids_object(kids));
            self.out.insert(id, Object::Dictionary(d));
            self.kept.insert(id);
            true
        }
    }
}

/// The outline cut down to the entries that point into the document's pages; an entry whose
/// parent points elsewhere moves up to the nearest one kept (as the document alone has it).
mod outline {
    use super::*;

    pub(super) fn prune(
        src: &Document,
        outlines: ObjectId,
        own: &HashSet<ObjectId>,
        overrides: &mut BTreeMap<ObjectId, Object>,
    ) -> bool {
        let Ok(root) = src.get_dictionary(outlines) else { return false };
        // (item, its new parent), in order.
        let mut kept: Vec<(ObjectId, ObjectId)> = Vec::new();
        let mut seen = HashSet::new();
        walk(src, reference(root, b"First"), outlines, own, &mut kept, &mut seen, 0);
        if kept.is_empty() {
            return false;
        }
        let mut children: BTreeMap<ObjectId, Vec<ObjectId>> = BTreeMap::new();
        for (item, parent) in &kept {
            children.entry(*parent).or_default().push(*item);
        }
        // Descendants of each kept item, for /Count (every entry open, as Chromium writes them).
        fn descendants(id: ObjectId, children: &BTreeMap<ObjectId, Vec<ObjectId>>) -> i64 {
            children
                .get(&id)
                .map_or(0, |kids| kids.iter().map(|k| 1 + descendants(*k, children)).sum())
        }
        for (parent, kids) in &children {
            let base = if *parent == outlines {
                root.clone()
            } else {
                match overrides.get(parent) {
                    Some(Object::Dictionary(d)) => d.clone(),
                    _ => match src.get_dictionary(*parent) {
                        Ok(d) => d.clone(),
                        Err(_) => continue,
                    },
                }
            };
            let mut d = base;
            d.set("First", kids[0]);
            d.set("Last", kids[kids.len() - 1]);
            d.set("Count", descendants(*parent, &children));
            overrides.insert(*parent, Object::Dictionary(d));
        }
        for (item, parent) in &kept {
            let siblings = &children[parent];
            let at = siblings.iter().position(|s| s == item).unwrap_or(0);
            let mut d = match overrides.get(item) {
                Some(Object::Dictionary(d)) => d.clone(),
                _ => match src.get_dictionary(*item) {
                    Ok(d) => d.clone(),
                    Err(_) => continue,
                },
            };
            d.set("Parent", *parent);
            for key in [&b"Prev"[..], b"Next"] {
                d.remove(key);
            }
            if at > 0 {
                d.set("Prev", siblings[at - 1]);
            }
            if let Some(next) = siblings.get(at + 1) {
                d.set("Next", *next);
            }
            if !children.contains_key(item) {
                for key in [&b"First"[..], b"Last", b"Count"] {
                    d.remove(key);
                }
            }
            overrides.insert(*item, Object::Dictionary(d));
        }
        true
    }

    fn walk(
        src: &Document,
        first: Option<ObjectId>,
        parent: ObjectId,
        own: &HashSet<ObjectId>,
        kept: &mut Vec<(ObjectId, ObjectId)>,
        seen: &mut HashSet<ObjectId>,
        depth: usize,
    ) {
        let mut next = first;
        while let Some(item) = next {
            if depth > MAX_DEPTH || !seen.insert(item) {
                return;
            }
            let Ok(d) = src.get_dictionary(item) else { return };
            let here = destination_page(d).is_some_and(|p| own.contains(&p));
            let new_parent = if here {
                kept.push((item, parent));
                item
            } else {
                parent
            };
            walk(src, reference(d, b"First"), new_parent, own, kept, seen, depth + 1);
            next = reference(d, b"Next");
        }
    }

    /// The page an entry goes to: `/Dest [page ...]` or a GoTo action's `/D`.
    fn destination_page(d: &lopdf::Dictionary) -> Option<ObjectId> {
        let dest = match d.get(b"Dest") {
            Ok(dest) => dest,
            Err(_) => d.get(b"A").ok()?.as_dict().ok()?.get(b"D").ok()?,
        };
        dest.as_array().ok()?.first()?.as_reference().ok()
    }
}
