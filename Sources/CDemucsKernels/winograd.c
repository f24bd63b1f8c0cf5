/* Winograd F(2x2, 3x3): the transforms around the 16 matrix multiplies that replace a 3x3
 * convolution with stride 1 and padding 1 (the decoders' rewrite convolution in the spectrogram
 * branch of htdemucs and HDemucs, a sixth of htdemucs's multiplies).
 *
 * Each 2x2 block of outputs ("tile") of an output channel is A^T [sum_ci (G g G^T) . (B^T d B)] A,
 * where g is the 3x3 kernel of (co, ci) and d the 4x4 input patch of ci around the tile. For each of
 * the 16 positions xi of the 4x4 transformed domain the sum over ci is a matrix product
 * M[xi] (cout x tiles) = U[xi] (cout x cin) . V[xi] (cin x tiles): 16 products with K = cin in place
 * of one with K = 9 cin, 2.25 times fewer multiplies. The matrices (Lavin & Gray, 2015):
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Their entries are 0, +-1 and +-1/2, so the transforms add no rounding beyond a few additions. */
#include "demucs_kernels.h"

void demucs_winograd_weights(const float *w, long cout, long cin, long co0, long co1, float *u) {
    long plane = cout * cin;
    for (long co = co0; co < co1; co++) {
        for (long ci = 0; ci < cin; ci++) {
            const float *g = w + (co * cin + ci) * 9;
            float t[4][3];
            for (int c = 0; c < 3; c++) {
                t[0][c] = g[c];
                t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
                t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
                t[3][c] = g[6 + c];
            }
            float *dst = u + co * cin + ci;
            for (int a = 0; a < 4; a++) {
                dst[(4 * a + 0) * plane] = t[a][0];
                dst[(4 * a + 1) * plane] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
                dst[(4 * a + 2) * plane] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
                dst[(4 * a + 3) * plane] = t[a][2];
            }
        }
    }
}

void demucs_winograd_input(const float *x, long height, long width, long tileRow0, long tileRows,
                           long ci0, long ci1, long cin, float *v) {
    long tilesW = (width + 1) / 2;
    long tiles = tileRows * tilesW;
    long plane = cin * tiles;
    for (long ci = ci0; ci < ci1; ci++) {
        const float *xc = x + ci * height * width;
        for (long ti = 0; ti < tileRows; ti++) {
            long top = 2 * (tileRow0 + ti) - 1;
            for (long tj = 0; tj < tilesW; tj++) {
                long left = 2 * tj - 1;
                float d[4][4];
                for (int r = 0; r < 4; r++) {
                    long h = top + r;
                    for (int c = 0; c < 4; c++) {
                        long col = left + c;
                        d[r][c] = (h < 0 || h >= height || col < 0 || col >= width) ? 0.0f : xc[h * width + col];
                    }
                }
                float t[4][4];
                for (int c = 0; c < 4; c++) {
                    t[0][c] = d[0][c] - d[2][c];
                    t[1][c] = d[1][c] + d[2][c];
                    t[2][c] = d[2][c] - d[1][c];
                    t[3][c] = d[1][c] - d[3][c];
                }
                float *dst = v + ci * tiles + ti * tilesW + tj;
                for (int a = 0; a < 4; a++) {
                    dst[(4 * a + 0) * plane] = t[a][0] - t[a][2];
                    dst[(4 * a + 1) * plane] = t[a][1] + t[a][2];
                    dst[(4 * a + 2) * plane] = t[a][2] - t[a][1];
                    dst[(4 * a + 3) * plane] = t[a][1] - t[a][3];
                }
            }
        }
    }
}

void demucs_winograd_output(const float *m, long cout, long tileRows, long width, long outRows,
                            long c0, long c1, float *y, long channelStride) {
    long tilesW = (width + 1) / 2;
    long tiles = tileRows * tilesW;
    long plane = cout * tiles;
    for (long co = c0; co < c1; co++) {
        float *yc = y + co * channelStride;
        for (long ti = 0; ti < tileRows; ti++) {
            for (long tj = 0; tj < tilesW; tj++) {
                const float *src = m + co * tiles + ti * tilesW + tj;
                float s[4][4];
                for (int k = 0; k < 16; k++) s[k / 4][k % 4] = src[k * plane];
                float t[2][4];
                for (int c = 0; c < 4; c++) {
                    t[0][c] = s[0][c] + s[1][c] + s[2][c];
                    t[1][c] = s[1][c] - s[2][c] - s[3][c];
                }
                for (int r = 0; r < 2; r++) {
                    long row = 2 * ti + r;
                    if (row >= outRows) break;
                    long col = 2 * tj;
                    yc[row * width + col] = t[r][0] + t[r][1] + t[r][2];
                    if (col + 1 < width) yc[row * width + col + 1] = t[r][1] - t[r][2] - t[r][3];
                }
            }
        }
    }
}
