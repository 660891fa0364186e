// Importing an ImageNet-style folder tree of JPEG and PNG images (one folder per class).
#pragma once

#include <cstdint>
#include <string>

#include "io/import_common.h"

namespace alexnet::io {

struct FolderImportOptions {
  int64_t size = 256;     // every image becomes size x size RGB
  int threads = 0;        // decoding threads; 0: std::thread::hardware_concurrency()
  bool skip_bad = false;  // leave unreadable images out (with a warning) instead of failing
};

// Imports root/<class>/<images>: every folder directly under root is a class (sorted by name, the
// label is the index, class_names are the folder names); the images of a class are the files in
// its folder and its subfolders, in sorted path order, whose extension is .jpg, .jpeg or .png in
// any case. Other files, and names starting with '.', are ignored. Images are decoded on several
// threads, resized (shorter side to size, then the central size x size, RGB) and written in
// import_order(n, options) through ShardWriter, with a Progress line.
// Errors throw DataError naming the file: root missing or not a folder, no class folders, a class
// folder without images, an unreadable image (with skip_bad: a one-line warning on stderr per bad
// file, which is left out; still an error if a part would be left empty). Both parts of a split are
// written in full before either gets its final names, so an error leaves no output at all.
// The dataset's source attribute is "import-folder <root>".
ImportResult import_folder(const std::string& root, const FolderImportOptions& folder,
                           const ImportOptions& options);

}  // namespace alexnet::io
