import CDemucsKernels

/// 3×3 convolutions (stride 1, padding 1) by Winograd's F(2×2, 3×3): 16 matrix multiplies with
/// K = cin instead of one with K = 9·cin, 2.25 times fewer multiply-adds, and a transformed input
/// 4 times the size of the input block instead of im2col's 9 times.
///
/// The spectrogram decoders' rewrite convolutions are this shape and were a sixth of htdemucs's
/// multiplies. The transforms (`CDemucsKernels/winograd.c`) only add, subtract and halve; the
/// result differs from the direct sum by a few float32 roundings, far below what parity sees.
extension Convolution {
    /// Floats of transformed input and products held per block of tile rows (16 MB).
    static var winogradBlockFloats: Int { ExecutionContext.current.tuning.winogradBlockFloats }

    static func conv2dWinograd(_ x: Tensor, weight: Tensor, bias: Tensor?, glu: Bool = false) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1]
            precondition(weight.shape[2] == 3 && weight.shape[3] == 3)
            let height = x.shape[x.rank - 2], width = x.shape[x.rank - 1]
            precondition(x.count == cin * height * width)
            let tilesW = (width + 1) / 2, tilesH = (height + 1) / 2
            let blockRows = max(1, min(tilesH, winogradBlockFloats / max(16 * (cin + cout) * tilesW, 1)))
            var out = Tensor(uninitialized: [glu ? cout / 2 : cout, height, width])
            var u = LargeBuffer.uninitialized(16 * cout * cin)
            var v = LargeBuffer.uninitialized(16 * cin * blockRows * tilesW)
            var m = LargeBuffer.uninitialized(16 * cout * blockRows * tilesW)
            var temp = glu ? LargeBuffer.uninitialized(cout * 2 * blockRows * width) : []
            weight.data.withUnsafeBufferPointer { ws in
                u.withUnsafeMutableBufferPointer { us in
                    let wBase = ws.baseAddress!, uBase = us.baseAddress!
                    Parallel.forEach(cout, grain: max(1, 4096 / max(cin, 1))) { cs in
                        demucs_winograd_weights(wBase, cout, cin, cs.lowerBound, cs.upperBound, uBase)
                    }
                }
            }
            x.data.withUnsafeBufferPointer { xs in
                u.withUnsafeBufferPointer { us in
                    v.withUnsafeMutableBufferPointer { vs in
                        m.withUnsafeMutableBufferPointer { ms in
                            temp.withUnsafeMutableBufferPointer { ts in
                                out.data.withUnsafeMutableBufferPointer { os in
                                    let xBase = xs.baseAddress!, uBase = us.baseAddress!
                                    let vBase = vs.baseAddress!, mBase = ms.baseAddress!, oBase = os.baseAddress!
                                    var tileRow0 = 0
                                    while tileRow0 < tilesH {
                                        let rows = min(blockRows, tilesH - tileRow0), tiles = rows * tilesW
                                        let row0 = 2 * tileRow0, outRows = min(2 * rows, height - row0)
                                        Parallel.forEach(cin, grain: max(1, 16384 / max(tiles, 1))) { cs in
                                            demucs_winograd_input(xBase, height, width, tileRow0, rows,
                                                                  cs.lowerBound, cs.upperBound, cin, vBase)
                                        }
                                        Parallel.forEach(16) { xis in
                                            for xi in xis {
                                                GEMM.multiplyOnThisThread(
                                                    m: cout, n: tiles, k: cin, a: uBase + xi * cout * cin, lda: cin,
                                                    b: vBase + xi * cin * tiles, ldb: tiles,
                                                    c: mBase + xi * cout * tiles, ldc: tiles)
                                            }
                                        }
                                        if glu {
                                            // The block's outputs, then GLU with the bias into `out`.
                                            let t = ts.baseAddress!, cols = outRows * width
                                            Parallel.forEach(cout, grain: max(1, 16384 / max(cols, 1))) { cs in
                                                demucs_winograd_output(mBase, cout, rows, width, outRows,
                                                                       cs.lowerBound, cs.upperBound, t, cols)
                                            }
                                            Parallel.forEach(cout / 2) { pairs in
                                                biasAndGLU(t, cols: cols, channels: cout, bias: bias,
                                                           into: oBase + row0 * width, stride: height * width, pairs: pairs)
                                            }
                                        } else {
                                            Parallel.forEach(cout, grain: max(1, 16384 / max(outRows * width, 1))) { cs in
                                                demucs_winograd_output(mBase, cout, rows, width, outRows,
                                                                       cs.lowerBound, cs.upperBound,
                                                                       oBase + row0 * width, height * width)
                                            }
                                        }
                                        tileRow0 += rows
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if let bias, !glu { addChannelBias(&out, bias: bias, batch: 1, plane: height * width) }
            return out
        }
    }
}
