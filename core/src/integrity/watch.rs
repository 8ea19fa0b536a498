pub struct Watcher;
