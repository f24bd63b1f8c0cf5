import Testing
import Watcher

/// Which names the watcher and scan consider at all.
@Suite struct CandidateTests {
    @Test(arguments: [
        "song.mp3", "Song.FLAC", "-rf.mp3", "my song (live).wav", "日本語.ogg", "part", "tmp.mp3",
        "song.mp3.bak", "file.parts", "x.download.mp3", "a~b.mp3",
    ])
    func acceptsOrdinaryNames(name: String) {
        #expect(FolderWatcher.isCandidate(name))
    }

    @Test(arguments: [
        "", ".", "..", ".hidden.mp3", ".song.mp3.Ab12Cd", "song.mp3.part", "song.mp3.PART", "a.crdownload",
        "a.download", "a.tmp", "a.TEMP", "a.partial", "song.mp3~", "a.swp", "a.!qB", "a.!QB", "a.opdownload",
    ])
    func rejectsHiddenAndTemporaryNames(name: String) {
        #expect(!FolderWatcher.isCandidate(name))
    }
}
